"""One module per API shape a client can speak (chat completions, ...): how its
stream is rendered from the normalised chunk stream (a `streaming.Renderer`) and how
its non-stream answer is built."""
