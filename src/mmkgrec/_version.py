"""The package version, in a leaf module so that any module can read it without importing the
package's top level (which imports the API lazily)."""

__version__ = "0.1.0"
