"""The ``growth`` command line: thin wrappers over typed functions in the packages."""
