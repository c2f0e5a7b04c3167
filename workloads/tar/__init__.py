"""Text-to-audio retrieval (TAR): ATST-Frame audio encoder, NT-Xent vs sigmoid loss, TAP pooling."""
