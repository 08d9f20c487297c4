// Package flist reads and writes rfs flists (the "fungi" format of
// github.com/threefoldtech/rfs v2): an SQLite manifest of a directory tree
// whose regular files are cut into 512 KiB blocks, each compressed, encrypted
// with a key derived from its content and stored as a blob in a
// content-addressed store (see pkg/store). Flists written here are read,
// mounted and unpacked by the rfs tool on Zero-OS nodes, and flists rfs wrote
// are read here.
//
// Pack turns a directory into an flist and uploads its blobs; Unpack, Mount,
// Tree, Inspect and Verify read one back. Writer and Reader give row-level
// access; Encoder and DecodeBlock are the block codec.
package flist
