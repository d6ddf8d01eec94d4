//! TODO: upload_pipe
