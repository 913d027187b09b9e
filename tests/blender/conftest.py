import pytest

bpy = pytest.importorskip("bpy")


@pytest.fixture(scope="session", autouse=True)
def addon():
    import gm_blender_addon

    gm_blender_addon.register()
    yield
    gm_blender_addon.unregister()


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene
