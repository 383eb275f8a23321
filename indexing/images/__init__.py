"""Images as documents: decoding under limits (`decode`), the file store with thumbnails (`store`),
and the vector index of image embeddings on both search backends (`index`)."""
