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
//
// An flist is someone else's file. The readers refuse duplicate paths and
// unsafe names, verify every block against its id and key before using a
// byte of it, never write past a file's size or outside the target (Unpack
// works through directory descriptors), follow the flist's routes only as
// their store.RoutePolicy allows, and print names that could drive a
// terminal quoted.
package flist
