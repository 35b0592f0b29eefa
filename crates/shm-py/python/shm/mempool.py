"""pyshm's ``mempool`` module: fixed-size blocks in shared memory."""
