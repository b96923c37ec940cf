import sys
from pathlib import Path

from hypothesis import settings

# Make tests/strategies.py importable as `strategies` under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("cnnlab", max_examples=60, deadline=None)
settings.load_profile("cnnlab")
