"""Speaker-text retrieval (Liu et al., "Speaker-Text Retrieval via Contrastive Learning"): corpora
pairing speakers' audio with free-text descriptions of the speaker."""
