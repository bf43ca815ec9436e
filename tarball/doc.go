// Package tarball turns a chunk's DESTDIR into split artifact tarballs and
// unpacks such tarballs into a staging area.
//
// Packing is deterministic: the same files give byte-identical tarballs
// whatever their mtimes, owners or the order they were written in, so one
// build has one digest in the content-addressed cache and identical builds on
// different workers deduplicate.
//
// Unpacking treats every tarball as hostile: artifacts come from a shared
// cache that a buggy or compromised worker may have filled, so no entry may
// create, change or follow anything outside the destination directory.
package tarball
