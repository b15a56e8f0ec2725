"""A plugin file that fails to import (runner-python's start-up test)."""

raise ImportError("broken on purpose")
