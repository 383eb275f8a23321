"""HTTP gateway: FastAPI app that turns requests into events and reads task state back."""
