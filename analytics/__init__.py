"""DuckDB archive, training and compliance exports (the analytics issue builds it)."""
