"""Images as documents: decoding under limits (`decode`), the one image store of ingested and generated
images with thumbnails (`store`, in a folder or a bucket: `blobs`), the vector index of image embeddings
on both search backends (`index`), ingestion in CLIP batches (`ingest`), images inside PDF/HTML files
(`embedded`), generated images as documents (`generated`) and search (`search`)."""
