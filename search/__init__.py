"""Search over platinum documents: the searcher (vector, full-text, hybrid), the pgvector index it
reads (kept in sync with the documents by `index`) and its relevance measures. A library used by the
embeddings asset, the agents' tools and the read API."""
