package rootfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/threefoldtech/zosbuilder/pkg/elfbin"
)

// upxArgs is the upx invocation: best ratio with LZMA, quiet, into a
// separate output file so the original stays intact until verified.
func upxArgs(in, out string) []string {
	return []string{"--best", "--lzma", "-q", "-o", out, in}
}

// upx compresses the listed binaries with upx when it is installed; without
// it the step is skipped with a warning naming it.
func (c *cleaner) upx(ctx context.Context) error {
	if len(c.opt.UPXBinaries) == 0 {
		return nil
	}
	tool := c.opt.UPXTool
	if tool == "" {
		tool = "upx"
	}
	path, err := exec.LookPath(tool)
	if err != nil {
		c.warn("upx: %s is not installed: skipping the UPX compression step (ENABLE_UPX) for %s", tool, strings.Join(c.opt.UPXBinaries, ", "))
		return nil
	}
	for _, p := range c.opt.UPXBinaries {
		if err := ctx.Err(); err != nil {
			return err
		}
		packed, reason, err := c.packOne(ctx, path, p)
		switch {
		case err != nil:
			return err
		case reason != "":
			c.rep.Skipped = append(c.rep.Skipped, Skip{Path: p, Reason: "upx: " + reason})
			c.logf(logrus.WarnLevel, "upx: %s left as is: %s", p, reason)
		default:
			c.rep.Packed = append(c.rep.Packed, packed)
			c.rep.UPXSaved += packed.Before - packed.After
		}
	}
	return nil
}

// packOne compresses one in-root binary. It returns a reason when the file
// was left alone, and an error only for failures of the tree itself.
func (c *cleaner) packOne(ctx context.Context, tool, p string) (Packed, string, error) {
	host, err := Resolve(c.root, p)
	if err != nil {
		return Packed{}, "not found in the rootfs", nil
	}
	st, err := os.Stat(host)
	if err != nil {
		return Packed{}, "", fmt.Errorf("upx %s: %w", p, err)
	}
	info, err := elfbin.Read(host)
	switch {
	case !st.Mode().IsRegular() || err != nil:
		return Packed{}, "not an ELF file", nil
	case elfbin.IsKernelModule(host):
		return Packed{}, "kernel module", nil
	case packedByUPX(host):
		return Packed{}, "already compressed", nil
	}
	tmp := host + upxTmpSuffix
	os.Remove(tmp)
	defer os.Remove(tmp)
	if out, err := exec.CommandContext(ctx, tool, upxArgs(host, tmp)...).CombinedOutput(); err != nil {
		return Packed{}, fmt.Sprintf("%s failed: %s: %s", tool, err, strings.TrimSpace(string(out))), nil
	}
	if reason := verifyPacked(ctx, tool, tmp, info); reason != "" {
		return Packed{}, reason, nil
	}
	after, err := os.Stat(tmp)
	if err != nil {
		return Packed{}, "", fmt.Errorf("upx %s: %w", p, err)
	}
	if after.Size() >= st.Size() {
		return Packed{}, "no size gain", nil
	}
	if err := os.Chmod(tmp, st.Mode().Perm()); err != nil {
		return Packed{}, "", fmt.Errorf("upx %s: %w", p, err)
	}
	if err := os.Rename(tmp, host); err != nil {
		return Packed{}, "", fmt.Errorf("upx %s: %w", p, err)
	}
	return Packed{Path: p, Before: st.Size(), After: after.Size()}, "", nil
}

// verifyPacked checks that upx's output is still an ELF program for the same
// machine and passes upx's own integrity test.
func verifyPacked(ctx context.Context, tool, packed string, orig elfbin.Info) string {
	info, err := elfbin.Read(packed)
	if err != nil {
		return "output is not a valid ELF file: " + err.Error()
	}
	if info.Machine != orig.Machine {
		return fmt.Sprintf("output machine %s differs from %s", info.Machine, orig.Machine)
	}
	if out, err := exec.CommandContext(ctx, tool, "-t", "-q", packed).CombinedOutput(); err != nil {
		return fmt.Sprintf("%s -t failed: %s: %s", tool, err, strings.TrimSpace(string(out)))
	}
	return ""
}
