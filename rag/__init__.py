"""Knowledge base, hybrid retrieval and answers."""
