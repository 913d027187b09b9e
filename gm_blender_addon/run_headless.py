"""Entry script for Blender's own binary: `blender -b --factory-startup --python-exit-code 1 --python THIS -- ...`.

Blender runs this file as a script, not as part of the package, so it puts the package's folder on sys.path first and
imports the package by that folder's name: gm_blender_addon in a checkout, gesture_maestro in an installed extension
(whose bundled wheels Blender puts on sys.path itself).
"""

import importlib
import sys
from pathlib import Path

if __name__ == "__main__":
    package = Path(__file__).resolve().parent
    sys.path.insert(0, str(package.parent))
    main = importlib.import_module(f"{package.name}.cli").main

    arguments = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    code = main(arguments)
    if code:
        sys.exit(code)
