"""RPC: JSON-RPC 2.0 as a sans-I/O protocol (``_protocol``), the rules for what an
exposed object offers (``_dispatch``), and the drivers that move its bytes:
blocking (``_client``, ``_server``), asyncio (``_aio``) and newline-delimited
plain JSON-RPC for other languages (``_lines``)."""
