"""Stock: counts, POS sales and receipts, the stock API and scan menu, the master-data import."""
