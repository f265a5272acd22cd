"""`storebot demo`: the seeded chain, the clock jump, the customer loop and the walk-throughs."""
