"""Gesture Maestro: turns a music recording into an animated orchestral conductor.

Only register()/unregister() live here; bpy is imported lazily so the pure core imports anywhere.
"""


def register():
    from .blender import registration

    registration.register()


def unregister():
    from .blender import registration

    registration.unregister()
