package initramfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"
)

// Settings of the xz binary backend, chosen from the measurements in
// docs/notes/initramfs.md: an even number of blocks of at most
// maxAutoBlock keeps both cores of a build machine busy until the end
// (+0.7% size for 2 blocks of 39 MB, +0.2% for 4 of 100 MB, both against one
// block); a dictionary larger than a block buys nothing.
const (
	maxAutoBlock = 100 << 20
	minBlockSize = 1 << 20
	maxDictSize  = 64 << 20 // xz -9
)

// layout returns the xz block size, the number of blocks and the
// dictionary size for an archive of cpioSize bytes. It depends on the size
// and opt.Blocks only, never on the machine. Without opt.Blocks the archive
// is split into the smallest even number of blocks of at most maxAutoBlock;
// blocks are never smaller than minBlockSize.
func layout(cpioSize int64, opt Options) (block, blocks, dict int64) {
	n := int64(opt.Blocks)
	if n <= 0 {
		n = 2 * max(1, (cpioSize+2*maxAutoBlock-1)/(2*maxAutoBlock))
	}
	block = max((cpioSize+n-1)/n, minBlockSize)
	dict = minBlockSize
	for dict < block && dict < maxDictSize {
		dict <<= 1
	}
	return block, max(1, (cpioSize+block-1)/block), dict
}

// encoder is a running compressor writing to the output file.
type encoder interface {
	io.Writer
	// Close flushes and waits for the encoder; it reports its failure.
	Close() error
	// Abort stops the encoder after a failure elsewhere.
	Abort()
}

// backend resolves CompressionAuto to the encoder that will run and finds
// the xz binary for CompressionXZ.
func backend(c Compression) (Compression, string, error) {
	c, err := ParseCompression(string(c))
	if err != nil {
		return "", "", err
	}
	if c == CompressionGo {
		return c, "", nil
	}
	p, err := exec.LookPath("xz")
	switch {
	case err == nil:
		return CompressionXZ, p, nil
	case c == CompressionXZ:
		return "", "", fmt.Errorf("INITRAMFS_COMPRESSION=xz: %w", ErrNoXZ)
	}
	return CompressionGo, "", nil
}

// encoder starts the job's encoder writing to out.
func (j *job) encoder(ctx context.Context, out *os.File) (encoder, error) {
	if j.backend == CompressionGo {
		bw := bufio.NewWriterSize(out, 1<<20)
		zw, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(bw)
		if err != nil {
			return nil, fmt.Errorf("start go xz encoder: %w", err)
		}
		return &goEncoder{zw: zw, bw: bw}, nil
	}
	cmd := exec.CommandContext(ctx, j.xzPath, xzArgs(j.size, j.opt)...)
	cmd.Stdout = out
	e := &xzEncoder{cmd: cmd}
	cmd.Stderr = &e.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start xz: %w", err)
	}
	e.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start xz: %w", err)
	}
	return e, nil
}

// xzArgs returns the xz command line for an archive of cpioSize bytes. The
// block size and dictionary depend only on the size and opt.Blocks, so the
// output is the same on machines with any number of CPUs: the threaded
// encoder (also used for one thread, "-T+1") writes identical streams for
// every thread count.
func xzArgs(cpioSize int64, opt Options) []string {
	block, _, dict := layout(cpioSize, opt)
	threads := strconv.Itoa(max(opt.Threads, 0))
	if opt.Threads == 1 {
		threads = "+1"
	}
	return []string{
		"--compress", "--stdout", "--quiet", "--format=xz", "--check=crc32",
		"--lzma2=preset=9,dict=" + strconv.FormatInt(dict, 10),
		"--block-size=" + strconv.FormatInt(block, 10),
		"--threads=" + threads,
		// Fail rather than silently change the output under a memory limit.
		"--no-adjust",
	}
}

type xzEncoder struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
}

func (e *xzEncoder) Write(p []byte) (int, error) {
	n, err := e.stdin.Write(p)
	if err != nil {
		// xz died: its stderr says why, the broken pipe does not.
		e.Abort()
		return n, fmt.Errorf("xz: %w", e.failure(err))
	}
	return n, nil
}

func (e *xzEncoder) Close() error {
	if err := e.stdin.Close(); err != nil {
		e.Abort()
		return fmt.Errorf("xz: %w", err)
	}
	if err := e.cmd.Wait(); err != nil {
		return fmt.Errorf("xz: %w", e.failure(err))
	}
	return nil
}

func (e *xzEncoder) Abort() {
	if e.cmd.ProcessState != nil {
		return
	}
	_ = e.cmd.Process.Kill()
	_ = e.stdin.Close()
	_ = e.cmd.Wait()
}

func (e *xzEncoder) failure(err error) error {
	if msg := strings.TrimSpace(e.stderr.String()); msg != "" {
		return fmt.Errorf("%s: %w", msg, err)
	}
	return err
}

type goEncoder struct {
	zw *xz.Writer
	bw *bufio.Writer
}

func (e *goEncoder) Write(p []byte) (int, error) { return e.zw.Write(p) }

func (e *goEncoder) Close() error {
	if err := e.zw.Close(); err != nil {
		return fmt.Errorf("go xz encoder: %w", err)
	}
	if err := e.bw.Flush(); err != nil {
		return fmt.Errorf("go xz encoder: %w", err)
	}
	return nil
}

func (e *goEncoder) Abort() {}
