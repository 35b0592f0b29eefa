"""pyshm's ``ring`` module: a lock-free FIFO of blocks in shared memory."""
