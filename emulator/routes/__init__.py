"""The emulator's route handlers, one module per resource group of the contract; app.py maps
them to paths and wraps them in the middlewares."""
