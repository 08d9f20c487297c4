package flist

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestWriterInsertError: an insert that fails on the Writer's inserter
// fails the calls after it and Commit, naming the rows, and nothing is
// committed.
func TestWriterInsertError(t *testing.T) {
	fl := filepath.Join(t.TempDir(), "e.fl")
	w, err := Create(fl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.tx.Exec(`create trigger refuse before insert on block begin select raise(abort, 'refused by the test'); end`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInode(Inode{Name: "/", Mode: uint32(TypeDir) | 0o755}); err != nil {
		t.Fatal(err)
	}
	blocks := make([]Block, batchRows) // a full batch: inserted before Commit
	var addErr error
	for i := 0; i < 10 && addErr == nil; i++ {
		addErr = w.AddBlocks(1, blocks)
	}
	err = w.Commit()
	for _, err := range []error{addErr, err} {
		if err == nil || !strings.Contains(err.Error(), "add blocks up to inode 1") || !strings.Contains(err.Error(), "refused by the test") {
			t.Errorf("error = %v, want the refused insert", err)
		}
	}
	r, err := Open(fl)
	if err == nil {
		defer r.Close()
		if in, err := r.Inode(ctx, RootIno); err == nil {
			t.Errorf("rows committed: %+v", in)
		}
	}
}
