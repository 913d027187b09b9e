"""Entry script for Blender's own binary: `blender -b --factory-startup --python-exit-code 1 --python THIS -- ...`.

Blender runs this file as a script, not as part of the package, so it puts the package's folder on sys.path first.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from gm_blender_addon.cli import main

    arguments = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    code = main(arguments)
    if code:
        sys.exit(code)
