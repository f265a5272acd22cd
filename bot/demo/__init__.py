"""`storebot demo`: a seeded chain, the sandbox and the bot on one machine, with the dashboard's demo panel."""
