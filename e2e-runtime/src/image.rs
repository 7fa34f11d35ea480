//! Images: pulled when missing, built from a Dockerfile, or built from a host binary.
