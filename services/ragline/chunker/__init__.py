"""The chunker stage: parse documents and split them into token-sized chunks."""
