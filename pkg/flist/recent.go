package flist

import "sync"

// recentCount is how many blocks a mount keeps in memory (8 MiB at most):
// the kernel asks for a 512 KiB block in 128 KiB pieces, and readahead
// keeps a few files' blocks in play at once. Memory stays bounded however
// much of the flist is read; the kernel's page cache and the disk cache
// hold the rest.
const recentCount = 16

// recentBlocks holds the plain content of the blocks read last.
type recentBlocks struct {
	mu     sync.Mutex
	blocks [recentCount]recentBlock
	next   int // the slot to reuse next (the oldest)
}

type recentBlock struct {
	id    [HashSize]byte
	plain []byte
}

func (r *recentBlocks) get(id [HashSize]byte) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.blocks {
		if b.plain != nil && b.id == id {
			return b.plain, true
		}
	}
	return nil, false
}

func (r *recentBlocks) add(id [HashSize]byte, plain []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.blocks {
		if b.plain != nil && b.id == id {
			return
		}
	}
	r.blocks[r.next] = recentBlock{id: id, plain: plain}
	r.next = (r.next + 1) % recentCount
}
