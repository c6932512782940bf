"""What the shared space makes possible: zero-shot transfer, the consistency audit, embedding arithmetic."""
