package rootfs

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
)

// Temporary-file suffixes of elfbin.Strip and of the upx step; Cleanup
// removes leftovers of an interrupted run.
const (
	stripTmpSuffix = ".strip-tmp"
	upxTmpSuffix   = ".upx-tmp"
	linkTmpSuffix  = ".link-tmp"
)

// stripJob is one inode to strip; links are its other hard-linked names.
type stripJob struct {
	path  string // in-root
	links []string
}

type stripResult struct {
	job   stripJob
	saved int64
	skip  string
	err   error
}

// strip strips every native ELF file walk found, one inode at a time (hard
// links are stripped once and linked again), on a few workers.
func (c *cleaner) strip(ctx context.Context) error {
	if _, err := exec.LookPath("strip"); err != nil {
		return fmt.Errorf("cleanup: stripping was asked for (ENABLE_STRIP) but binutils' strip is missing: %w", err)
	}
	jobs, skips := c.stripJobs()
	c.rep.Skipped = append(c.rep.Skipped, skips...)
	work := make(chan stripJob)
	results := make(chan stripResult)
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), 4) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				results <- c.stripOne(ctx, j)
			}
		}()
	}
	go func() {
		defer close(work)
		for _, j := range jobs {
			select {
			case work <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	var firstErr error
	for r := range results {
		switch {
		case r.err != nil && firstErr == nil:
			firstErr = r.err
		case r.skip != "":
			c.rep.Skipped = append(c.rep.Skipped, Skip{Path: r.job.path, Reason: r.skip})
			c.logf(logrus.WarnLevel, "strip: %s left as is: %s", r.job.path, r.skip)
		case r.err == nil:
			c.rep.Stripped++
			c.rep.StripSaved += r.saved
		}
	}
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// stripJobs groups the ELF files by inode and drops those strip must not
// touch.
func (c *cleaner) stripJobs() ([]stripJob, []Skip) {
	var jobs []stripJob
	var skips []Skip
	byInode := map[[2]uint64]int{}
	for _, p := range c.elves {
		host := filepath.Join(c.root, p)
		if reason := stripRefusal(host); reason != "" {
			skips = append(skips, Skip{Path: p, Reason: reason})
			continue
		}
		st, err := os.Lstat(host)
		if err != nil {
			continue
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
			key := [2]uint64{uint64(sys.Dev), sys.Ino}
			if i, seen := byInode[key]; seen {
				jobs[i].links = append(jobs[i].links, p)
				continue
			}
			byInode[key] = len(jobs)
		}
		jobs = append(jobs, stripJob{path: p})
	}
	return jobs, skips
}

// stripRefusal says why the ELF file at host must not be stripped, or "".
func stripRefusal(host string) string {
	if packedByUPX(host) {
		return "compressed by upx: strip would corrupt it"
	}
	f, err := elf.Open(host)
	if err != nil {
		return "unreadable ELF: " + err.Error()
	}
	defer f.Close()
	switch {
	case f.Machine != elf.EM_X86_64 && f.Machine != elf.EM_386:
		return fmt.Sprintf("machine %s: not a native binary", f.Machine)
	case len(f.Sections) == 0:
		return "no section headers"
	case f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN && f.Type != elf.ET_REL:
		return fmt.Sprintf("ELF type %s", f.Type)
	}
	return ""
}

// packedByUPX looks for the UPX! marker upx writes near the start of a
// packed file.
func packedByUPX(host string) bool {
	f, err := os.Open(host)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, _ := io.ReadFull(f, head)
	return bytes.Contains(head[:n], []byte("UPX!"))
}

func (c *cleaner) stripOne(ctx context.Context, j stripJob) stripResult {
	host := filepath.Join(c.root, j.path)
	saved, err := elfbin.Strip(ctx, host)
	if err != nil {
		if ctx.Err() != nil {
			return stripResult{job: j, err: ctx.Err()}
		}
		// elfbin.Strip never leaves a broken file: the original is intact.
		return stripResult{job: j, skip: err.Error()}
	}
	for _, l := range j.links {
		if err := relink(host, filepath.Join(c.root, l)); err != nil {
			return stripResult{job: j, err: err}
		}
	}
	return stripResult{job: j, saved: saved}
}

// relink makes name a hard link of target again, atomically.
func relink(target, name string) error {
	tmp := name + linkTmpSuffix
	os.Remove(tmp)
	if err := os.Link(target, tmp); err != nil {
		return fmt.Errorf("relink %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("relink %s: %w", name, err)
	}
	return nil
}
