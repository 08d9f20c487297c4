package bench

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
	"github.com/threefoldtech/zosbuilder/internal/logging"
	"github.com/threefoldtech/zosbuilder/internal/procs"
	"github.com/threefoldtech/zosbuilder/internal/versitygw"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

// RfsOptions configure Rfs. The zero value measures a 1 GiB tree built from the
// first /lib/modules/* tree, with a dir store and, when versitygw is
// installed, an S3 store.
type RfsOptions struct {
	WorkDir    string // scratch space; default a temporary directory, removed afterwards
	Tree       string // an existing tree to pack (e.g. the firmware set) instead of a generated one
	ModulesDir string // default: the first /lib/modules/* directory
	TreeBytes  int64  // generated tree size; default 1 GiB (modules + random files)
	Parallel   int    // PackOptions.Parallel; default flist.DefaultParallel
	// Runs is how many times each store is measured, each time into a
	// fresh store; the report keeps the median run. Default 3.
	Runs   int
	SkipS3 bool // do not run the versitygw pack
	// TmpfsDir, when set, adds a pack to a dir store there (e.g. /dev/shm),
	// which shows the pack's own cost apart from the disk's write cost.
	TmpfsDir     string
	VersitygwBin string // default: PATH, then ~/go/bin/versitygw
	Log          logrus.FieldLogger
}

// CodecStep is the single-core throughput of one codec step.
type CodecStep struct {
	Name string
	MBps float64 // MB (1e6 bytes) of the step's input per CPU second
}

// PackRun is one store's pair of packs.
type PackRun struct {
	Store          string
	Goal           float64 // % of the ceiling the first pack should reach; 0: none (S3)
	Runs           int     // runs measured; this is their median by CeilingPercent
	MinPercent     float64 // the lowest CeilingPercent of the runs
	MaxPercent     float64 // and the highest
	CeilingMBps    float64 // cores × the codec measured just before this run
	First, Second  flist.Stats
	FirstMBps      float64       // tree bytes per wall-clock second
	CeilingPercent float64       // FirstMBps / CeilingMBps
	FirstCPU       time.Duration // CPU time of this process during the first pack (not the S3 server's)
	CPUBusy        float64       // FirstCPU / (wall time × cores): how much of the machine the pack got
	CodecShare     float64       // share of FirstCPU the codec alone needs: the ceiling share on idle cores
	SecondPercent  float64       // Second.Duration / First.Duration; over several runs, their median
	SecondMin      float64       // the lowest SecondPercent of the runs
	SecondMax      float64       // and the highest
	SecondUploads  int           // the most blobs any run's second pack uploaded
	PeakRSS        int64         // the process's peak resident memory during the first pack (VmHWM), bytes; 0: unknown
}

// RfsReport is what Rfs measured.
type RfsReport struct {
	Cores       int // CPUs the process may use (procs.CPUs)
	Procs       int // GOMAXPROCS: Ps of the Go scheduler (procs.ForBlockingIO gives two per CPU)
	CPU         string
	Load        string // /proc/loadavg before the packs: the machine may be shared
	Tree        string // what was packed
	TreeFiles   int
	TreeBytes   int64
	Steps       []CodecStep // one core, per CPU second of that thread
	CodecMBps   float64     // the whole block codec, one core, MB of plain data per CPU second
	CeilingMBps float64     // Cores × CodecMBps
	Runs        []PackRun
}

// Goals from the issue: the first pack reaches this % of the ceiling (to a
// dir store on tmpfs, and on a disk); the second pack takes at most this %
// of the first's time; the pack's peak memory stays under this, whatever the
// tree.
const (
	goalTmpfs   = 70.0
	goalDisk    = 50.0
	goalSecond  = 5.0
	goalPeakRSS = 200e6
)

// WriteTable prints the report as Markdown tables and the goals' status.
func (r RfsReport) WriteTable(w io.Writer) error {
	var err error
	p := func(format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, a...)
		}
	}
	p("Machine: %d cores (%s), GOMAXPROCS %d, load average %s. Tree: %s, %d files, %.0f MB.\n\n", r.Cores, r.CPU, r.Procs, r.Load, r.Tree, r.TreeFiles, float64(r.TreeBytes)/1e6)
	p("| step (one core, on a sample of the tree; MB per CPU second) | MB/s |\n|---|---:|\n")
	for _, s := range r.Steps {
		p("| %s | %.0f |\n", s.Name, s.MBps)
	}
	p("| whole block codec (per MB of plain data) | %.0f |\n", r.CodecMBps)
	p("| ceiling: %d cores × whole codec | %.0f |\n\n", r.Cores, r.CeilingMBps)
	p("| store | first pack | MB/s | %% of ceiling | CPU busy | codec share of CPU | peak RSS | blobs uploaded | second pack | blobs uploaded | second / first |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, run := range r.Runs {
		p("| %s | %.2f s | %.0f | %s | %.0f%% | %.0f%% | %s | %d | %.2f s | %d | %s |\n", run.Store,
			run.First.Duration.Seconds(), run.FirstMBps, run.percentRange(), run.CPUBusy, run.CodecShare, mb(run.PeakRSS),
			run.First.Uploaded, run.Second.Duration.Seconds(), run.SecondUploads, run.secondRange())
	}
	p("\nEach store is measured %d times, each time into a fresh store, against the codec measured just before; the row is the median run by %% of ceiling, with the range of all runs in brackets, "+
		"except second / first: the median of the runs' ratios, with their range, and the second pack's blobs uploaded: the most of any run. ", r.runs())
	p("CPU busy: the pack's CPU time over wall time × cores (below 100%%: the cores were shared or idle). " +
		"Codec share: the CPU time the codec alone needs for the tree over the pack's CPU time, i.e. the %% of the ceiling the pack reaches when it has the cores to itself. " +
		"Peak RSS: the process's VmHWM, reset before each pack; the largest of the runs.\n")
	for _, run := range r.Runs {
		if strings.Contains(run.Store, "no journal") {
			p("\n%s: an ext4 without a journal checks, for each new inode, the inodes deleted within the last 30 to 120 s; "+
				"after large deletions (an earlier run's cleanup) that check took over a third of the pack's CPU. Leave two minutes between runs.\n", run.Store)
			break
		}
	}
	p("\nGoals (ratios):\n")
	for _, run := range r.Runs {
		if run.Goal == 0 {
			continue
		}
		p("- %s: first pack >= %.0f%% of the ceiling: %s (median run: %s by wall clock, %.0f%% by CPU); "+
			"second pack <= %.0f%% of the first, uploading nothing: %s (median %s, %d blobs, %d of %d files unchanged); "+
			"peak RSS <= %s: %s (%s).\n",
			run.Store, run.Goal, goalStatus(run.CeilingPercent >= run.Goal, run.CodecShare >= run.Goal), run.percentRange(), run.CodecShare,
			goalSecond, met(run.SecondUploads == 0 && run.SecondPercent <= goalSecond), run.secondRange(), run.SecondUploads,
			run.Second.Reused, run.Second.Files,
			mb(goalPeakRSS), met(run.PeakRSS > 0 && run.PeakRSS <= goalPeakRSS), mb(run.PeakRSS))
	}
	return err
}

// percentRange is the run's share of the ceiling, with the range of all
// runs when there were several.
func (run PackRun) percentRange() string {
	return withRange(0, run.Runs, run.CeilingPercent, run.MinPercent, run.MaxPercent)
}

// secondRange is the second pack's time over the first's, with the range
// of all runs when there were several.
func (run PackRun) secondRange() string {
	return withRange(1, run.Runs, run.SecondPercent, run.SecondMin, run.SecondMax)
}

// withRange formats a percentage with decimals digits, followed by the
// range lo–hi when it came from several runs.
func withRange(decimals, runs int, v, lo, hi float64) string {
	if runs <= 1 {
		return fmt.Sprintf("%.*f%%", decimals, v)
	}
	return fmt.Sprintf("%.*f%% (%.*f–%.*f%%)", decimals, v, decimals, lo, decimals, hi)
}

// runs is how many times each store was measured.
func (r RfsReport) runs() int {
	if len(r.Runs) == 0 {
		return 0
	}
	return r.Runs[0].Runs
}

// goalStatus is "met" by wall clock, "met by CPU" when only the
// load-independent figure reaches the goal, or "NOT met". Wall clock falls
// short of CPU when the cores were shared with other work or left idle by
// the pack (waiting on writes): CPU busy in the table tells which.
func goalStatus(wall, cpu bool) string {
	switch {
	case wall:
		return "met"
	case cpu:
		return "met by CPU only (wall clock short: the cores were shared or idle, see CPU busy)"
	default:
		return "NOT met"
	}
}

func mb(n int64) string {
	if n <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// Rfs measures flist packing: throughput of a pack of a ~1 GiB tree (a
// kernel module tree plus generated random data, or a tree given, such as
// the firmware set) to a dir store on disk and on tmpfs and to a real S3
// server (versitygw) on loopback, next to the single-core throughput of each
// codec step, so the reader sees how close a pack runs to the machine's
// limit; the cost of packing the unchanged tree again; and the pack's peak
// memory. It builds the tree, measures the codec steps and packs the tree
// twice into each store. `mage bench:rfs` prints the report's table.
func Rfs(ctx context.Context, opt RfsOptions) (RfsReport, error) {
	rep := RfsReport{Cores: procs.CPUs(), Procs: runtime.GOMAXPROCS(0), CPU: cpuModel()}
	if err := opt.defaults(); err != nil {
		return rep, err
	}
	log := opt.Log
	work := opt.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "flistbench-")
		if err != nil {
			return rep, err
		}
		defer os.RemoveAll(d)
		work = d
	}
	tree := opt.Tree
	if tree == "" {
		tree = filepath.Join(work, "tree")
		defer os.RemoveAll(tree)
		if err := os.RemoveAll(tree); err != nil {
			return rep, err
		}
		log.Infof("building a %.0f MB tree in %s from %s and random data", float64(opt.TreeBytes)/1e6, tree, opt.ModulesDir)
		if _, _, err := buildTree(opt.ModulesDir, tree, opt.TreeBytes); err != nil {
			return rep, err
		}
		// Written back now, not by the kernel during the packs.
		if err := fsutil.SyncFS(tree); err != nil {
			return rep, err
		}
		rep.Tree = fmt.Sprintf("%s plus random data", opt.ModulesDir)
	} else {
		rep.Tree = tree
	}
	files, size, err := treeSize(tree)
	if err != nil {
		return rep, err
	}
	rep.TreeFiles, rep.TreeBytes = files, size

	log.Info("measuring the codec steps on one core")
	sample, err := sampleChunks(tree, 128)
	if err != nil {
		return rep, err
	}
	rep.Steps, rep.CodecMBps = measureSteps(sample)
	rep.CeilingMBps = float64(rep.Cores) * rep.CodecMBps
	sample = nil
	runtime.GC()
	debug.FreeOSMemory() // the sample is not the packs' memory
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}

	// The stores are removed at the end, not between runs: on an ext4
	// without a journal, files created within 30 s of many deletions make
	// the inode allocator skip every recently freed inode, at a cost that
	// would fall on the next run.
	dirs := []string{filepath.Join(work, "dirstore")}
	defer os.RemoveAll(dirs[0])
	if err := os.RemoveAll(dirs[0]); err != nil { // a store left by an earlier run
		return rep, err
	}
	if opt.TmpfsDir != "" {
		tmpfs, err := os.MkdirTemp(opt.TmpfsDir, "flistbench-")
		if err != nil {
			return rep, err
		}
		defer os.RemoveAll(tmpfs)
		dirs = append(dirs, tmpfs)
	}
	for _, root := range dirs {
		fsName, goal := fsType(filepath.Dir(root))
		run, err := packRuns(ctx, log, "dir ("+fsName+")", func(i int) (store.Store, func() error, error) {
			dir := filepath.Join(root, fmt.Sprint(i))
			done := func() error { return nil }
			if fsName == "tmpfs" {
				// Memory, unlike a disk, is best given back at once: each
				// run then writes to memory the last one used. On a VM,
				// memory written for the first time since boot costs the
				// host a page fault, which is not the pack's cost.
				done = func() error { return os.RemoveAll(dir) }
			}
			return store.NewDir(dir), done, nil
		}, tree, work, opt, rep.Cores)
		if err != nil {
			return rep, err
		}
		run.Goal = goal
		rep.Runs = append(rep.Runs, run)
	}

	if !opt.SkipS3 {
		s3dir := filepath.Join(work, "s3")
		defer os.RemoveAll(s3dir)
		if err := os.RemoveAll(s3dir); err != nil {
			return rep, err
		}
		srv, err := versitygw.Start(ctx, versitygw.Options{Bin: opt.VersitygwBin, Dir: s3dir, KeepAlive: true})
		if err != nil {
			return rep, err
		}
		defer srv.Close()
		if err := srv.CreateBucket(ctx, "bench"); err != nil {
			return rep, err
		}
		run, err := packRuns(ctx, log, "S3 (versitygw, loopback)", func(i int) (store.Store, func() error, error) {
			s, err := store.Open(srv.URL("bench", fmt.Sprintf("blobs%d", i)))
			return s, func() error { return nil }, err
		}, tree, work, opt, rep.Cores)
		if err != nil {
			return rep, err
		}
		rep.Runs = append(rep.Runs, run)
	}
	return rep, nil
}

func (o *RfsOptions) defaults() error {
	o.Log = logging.OrDiscard(o.Log)
	if o.TreeBytes <= 0 {
		o.TreeBytes = 1 << 30
	}
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if o.ModulesDir == "" && o.Tree == "" {
		dirs, _ := filepath.Glob("/lib/modules/*")
		sort.Strings(dirs)
		if len(dirs) == 0 {
			return errors.New("bench rfs: no /lib/modules/* tree (apt-get install linux-image-amd64) and no ModulesDir given")
		}
		o.ModulesDir = dirs[0]
	}
	if !o.SkipS3 && o.VersitygwBin == "" {
		o.VersitygwBin = versitygw.Bin()
		if o.VersitygwBin == "" {
			return errors.New("bench rfs: versitygw not found (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0) and SkipS3 not set")
		}
	}
	return nil
}

// packRuns measures a store opt.Runs times, each time packing into the
// fresh store open gives (and calling the function it returns with it
// once done), and returns the median run by share of the ceiling. Each
// run's ceiling is the codec measured just before it: on a shared machine
// the codec's own speed drifts by ±10% within minutes, and single runs by
// more than that.
func packRuns(ctx context.Context, log logrus.FieldLogger, name string, open func(run int) (store.Store, func() error, error), tree, work string, opt RfsOptions, cores int) (PackRun, error) {
	var runs []PackRun
	for i := range opt.Runs {
		s, done, err := open(i)
		if err != nil {
			return PackRun{}, err
		}
		codec, err := measureCodec(tree)
		if err != nil {
			return PackRun{}, err
		}
		log.Infof("run %d of %d", i+1, opt.Runs)
		run, err := packTwice(ctx, log, name, s, tree, work, opt.Parallel, cores, codec)
		if err == nil {
			err = done()
		}
		if err != nil {
			return run, err
		}
		runs = append(runs, run)
	}
	sort.Slice(runs, func(a, b int) bool { return runs[a].CeilingPercent < runs[b].CeilingPercent })
	med := runs[len(runs)/2]
	med.Runs, med.MinPercent, med.MaxPercent = len(runs), runs[0].CeilingPercent, runs[len(runs)-1].CeilingPercent
	// The second pack (tens of milliseconds) has noise of its own: its goal
	// is judged on the median of the runs' ratios, not on the run whose
	// first pack was the median (the higher middle of an even count).
	seconds := make([]float64, 0, len(runs))
	for _, run := range runs {
		// Memory and uploads are not the machine's noise: their goals
		// are on the largest.
		med.PeakRSS = max(med.PeakRSS, run.PeakRSS)
		med.SecondUploads = max(med.SecondUploads, run.Second.Uploaded)
		seconds = append(seconds, run.SecondPercent)
	}
	sort.Float64s(seconds)
	med.SecondPercent, med.SecondMin, med.SecondMax = seconds[len(seconds)/2], seconds[0], seconds[len(seconds)-1]
	return med, nil
}

// measureCodec measures the whole codec on one core on a fresh sample of
// the tree, freed before returning: it is not the pack's memory.
func measureCodec(tree string) (float64, error) {
	sample, err := sampleChunks(tree, 128)
	if err != nil {
		return 0, err
	}
	codec := codecRate(sample)
	sample = nil
	runtime.GC()
	debug.FreeOSMemory()
	return codec, nil
}

func packTwice(ctx context.Context, log logrus.FieldLogger, name string, s store.Store, tree, work string, parallel, cores int, codecMBps float64) (PackRun, error) {
	run := PackRun{Store: name, CeilingMBps: float64(cores) * codecMBps}
	fl := filepath.Join(work, "bench.fl")
	opt := flist.PackOptions{Store: s, Parallel: parallel}
	var err error
	log.Infof("packing to %s (first)", name)
	resetPeakRSS()
	cpu := processCPU()
	if run.First, err = flist.Pack(ctx, tree, fl, opt); err != nil {
		return run, err
	}
	run.FirstCPU = processCPU() - cpu
	run.PeakRSS = peakRSS()
	run.CPUBusy = 100 * run.FirstCPU.Seconds() / (run.First.Duration.Seconds() * float64(cores))
	run.CodecShare = 100 * float64(run.First.Bytes) / 1e6 / codecMBps / run.FirstCPU.Seconds()
	log.Infof("packing to %s (second, unchanged tree)", name)
	if run.Second, err = flist.Pack(ctx, tree, fl, opt); err != nil {
		return run, err
	}
	run.FirstMBps = float64(run.First.Bytes) / 1e6 / run.First.Duration.Seconds()
	run.CeilingPercent = 100 * run.FirstMBps / run.CeilingMBps
	run.SecondPercent = 100 * run.Second.Duration.Seconds() / run.First.Duration.Seconds()
	return run, os.Remove(fl)
}

// resetPeakRSS makes VmHWM the current RSS (Linux ≥ 4.0), so peakRSS then
// tells the peak of what follows.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is VmHWM from /proc/self/status in bytes, or 0.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kB int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kB); err == nil {
				return kB << 10
			}
		}
	}
	return 0
}

// fsType names the filesystem of dir and gives the goal of a pack to a dir
// store there: tmpfs measures the pack's own cost, a disk adds the writes.
func fsType(dir string) (string, float64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "disk", goalDisk
	}
	switch st.Type {
	case unix.TMPFS_MAGIC:
		return "tmpfs", goalTmpfs
	case unix.EXT4_SUPER_MAGIC:
		if !ext4Journal(dir) {
			return "ext4, no journal", goalDisk
		}
		return "ext4", goalDisk
	case unix.XFS_SUPER_MAGIC:
		return "xfs", goalDisk
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs", goalDisk
	}
	return fmt.Sprintf("fs 0x%x", st.Type), goalDisk
}

// ext4Journal reports whether the ext4 holding dir has a journal (true
// when it cannot tell). Without one, each new inode costs a check of the
// inodes deleted within the last 30 to 120 s (the kernel's
// recently_deleted): after a large deletion, perf showed that check taking
// over a third of a pack's CPU, so the report names such a filesystem.
func ext4Journal(dir string) bool {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return true
	}
	dev, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return true
	}
	task, err := os.ReadFile(filepath.Join("/sys/fs/ext4", filepath.Base(dev), "journal_task"))
	return err != nil || strings.TrimSpace(string(task)) != "<none>"
}

// treeSize counts the regular files of a tree and their bytes.
func treeSize(tree string) (files int, size int64, err error) {
	err = filepath.WalkDir(tree, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		size += fi.Size()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("bench rfs: %w", err)
	}
	return files, size, nil
}

// buildTree copies the module tree into dst/modules and fills
// dst/random with seeded random files up to total bytes.
func buildTree(modules, dst string, total int64) (files int, size int64, err error) {
	err = filepath.WalkDir(modules, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(modules, p)
		target := filepath.Join(dst, "modules", rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			n, err := copyFile(p, target)
			files++
			size += n
			return err
		}
		return nil
	})
	if err != nil {
		return files, size, fmt.Errorf("bench rfs: build tree: %w", err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{'z', 'o', 's'}))
	sizes := []int64{64 << 20, 8 << 20, 1 << 20, 300 << 10}
	for i := 0; size < total; i++ {
		n := min(sizes[i%len(sizes)]+int64(i), total-size)
		p := filepath.Join(dst, "random", fmt.Sprintf("%03d", i/100), fmt.Sprintf("r%05d.bin", i))
		if err := writeRandom(rng, p, n); err != nil {
			return files, size, fmt.Errorf("bench rfs: build tree: %w", err)
		}
		files++
		size += n
	}
	return files, size, nil
}

// copyFile copies src to dst. The module tree is copied, not hard-linked:
// a link to /lib/modules shares its inodes, whose ctime changes whenever
// anything else links or unlinks them, and the second pack would rightly
// read such files again.
func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	return n, errors.Join(err, out.Close())
}

func writeRandom(rng *rand.Rand, path string, n int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		c := min(int64(len(buf)), left)
		for i := 0; i < int(c); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < int(c); j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:c]); err != nil {
			f.Close()
			return err
		}
		left -= c
	}
	return f.Close()
}

// sampleChunks reads n block-sized chunks spread evenly over the tree's
// files, so the codec is measured on the tree's mix of data.
func sampleChunks(tree string, n int) ([][]byte, error) {
	var chunks []struct {
		path string
		off  int64
	}
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		for off := int64(0); off < fi.Size(); off += flist.BlockSize {
			chunks = append(chunks, struct {
				path string
				off  int64
			}{p, off})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	step := max(len(chunks)/n, 1)
	var out [][]byte
	for i := 0; i < len(chunks); i += step {
		f, err := os.Open(chunks[i].path)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, flist.BlockSize)
		m, err := f.ReadAt(buf, chunks[i].off)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		out = append(out, buf[:m])
	}
	return out, nil
}

// measureSteps times each step over the sample on one locked OS thread by
// that thread's CPU time (other load on the machine does not count),
// repeating for at least half a CPU second.
func measureSteps(sample [][]byte) ([]CodecStep, float64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	plainBytes := sum(sample)
	compressed := make([][]byte, len(sample))
	sealed := make([][]byte, len(sample))
	var enc flist.Encoder
	for i, s := range sample {
		compressed[i] = snappy.Encode(nil, s)
		_, blob, _ := enc.Encode(s)
		sealed[i] = append([]byte(nil), blob...)
	}
	key := blake2b.Sum256(sample[0])
	var dst []byte
	steps := []CodecStep{
		{"BLAKE2b-256 (key: of the plain chunk)", rate(plainBytes, func() {
			for _, s := range sample {
				blake2b.Sum256(s)
			}
		})},
		{"snappy encode (golang/snappy)", rate(plainBytes, func() {
			for _, s := range sample {
				dst = snappy.Encode(dst[:cap(dst)], s)
			}
		})},
		{"AES-256-GCM seal (of the compressed chunk)", rate(sum(compressed), func() {
			for _, c := range compressed {
				gcm := mustGCM(key)
				dst = gcm.Seal(dst[:0], key[:12], c, nil)
			}
		})},
		{"BLAKE2b-256 (id: of the blob)", rate(sum(sealed), func() {
			for _, s := range sealed {
				blake2b.Sum256(s)
			}
		})},
	}
	return steps, codecRate(sample)
}

// codecRate is the whole codec's speed on one locked OS thread, in MB of
// plain data per CPU second of that thread.
func codecRate(sample [][]byte) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var enc flist.Encoder
	return rate(sum(sample), func() {
		for _, s := range sample {
			_, _, _ = enc.Encode(s)
		}
	})
}

// rate runs fn, which handles bytes, until the calling thread has spent at
// least half a CPU second in it, and returns MB per CPU second of the
// thread. The caller locks its OS thread.
func rate(bytes int64, fn func()) float64 {
	start := threadCPU()
	var rounds int64
	for rounds == 0 || threadCPU()-start < time.Second/2 {
		fn()
		rounds++
	}
	return float64(bytes*rounds) / 1e6 / (threadCPU() - start).Seconds()
}

// sum is the total length of bs.
func sum(bs [][]byte) (n int64) {
	for _, b := range bs {
		n += int64(len(b))
	}
	return n
}

func rusage(who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the CPU time (user + system) of this process so far.
func processCPU() time.Duration { return rusage(unix.RUSAGE_SELF) }

// threadCPU is the CPU time of the calling OS thread.
func threadCPU() time.Duration { return rusage(unix.RUSAGE_THREAD) }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func mustGCM(key [32]byte) cipher.AEAD {
	c, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	gcm, err := cipher.NewGCM(c)
	if err != nil {
		panic(err)
	}
	return gcm
}
