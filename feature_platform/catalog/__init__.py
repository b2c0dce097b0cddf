"""The shipped example programs, in the shape of a user's project: templates under
`programs/`, feature set definitions (and loaders) in Python modules beside them."""

from pathlib import Path

PROJECT_DIR = Path(__file__).parent
