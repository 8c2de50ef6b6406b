"""What turns outside input into contract events: the publisher (and the HTTP gateway)."""
