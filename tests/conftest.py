"""Suite-wide pytest configuration."""

# pytester runs pytest inside a test: it checks the jobtrace pytest plugin as a user's suite sees it.
pytest_plugins = ["pytester"]
