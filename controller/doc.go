// Package controller is the farm's coordinator. It accepts builds from
// initiators, reads the definitions at the requested commit, resolves the
// build graph and cache keys, skips what the artifact cache already holds,
// hands ready steps to connected workers through the scheduler, and relays
// what happens back to every initiator that follows the build.
//
// All mutable state lives behind one mutex in Controller; RPC handlers only
// translate between the wire and that state, and every slow operation
// (fetching definitions, asking the cache) runs outside the lock.
package controller
