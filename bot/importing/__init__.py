"""Master-data import: `storebot import` reads stores, staff, SKUs, stock and customers from CSV or XLSX."""
