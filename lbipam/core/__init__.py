"""The pure core: allocator, selectors, validation and planning. No I/O, no asyncio, no clients."""
