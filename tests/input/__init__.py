"""Any input gets an answer: API, callback, chat and edge inputs, with hypothesis properties."""
