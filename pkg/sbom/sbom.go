// Package sbom knows what is in a Zero-OS image: it takes stock of a built
// image (the Alpine packages of its apk database, the components, the
// kernel, every module and firmware file in the initramfs and in the
// flists, the flists themselves, the build id), writes that as an SPDX 2.3
// JSON document, reads such documents back (also from the copy embedded in
// a vmlinuz.efi or initramfs.cpio.xz) and compares two images.
//
// Every regular file of the initramfs gets an owner: an apk package, a
// component, the kernel's modules, a firmware entry, the project's own
// config (/init, the zinit units) or a build stage that generated it (the
// build id, depmod's indexes, the embedded flist manifests...). A file no
// rule explains is reported, so nothing enters an image unaccounted for.
//
// Documents are reproducible: elements sorted, SPDX ids derived from names
// and paths, the creation time from SOURCE_DATE_EPOCH and the document
// namespace from a hash of the content, never a random UUID.
package sbom

import (
	"time"
)

// Inventory is what an image holds, the model behind the SPDX document.
type Inventory struct {
	// BuildID is the image's /etc/zero-os-build-id.
	BuildID string
	// Created is when the image was built (SOURCE_DATE_EPOCH when set).
	Created time.Time
	// Alpine is the Alpine release of the base (/etc/alpine-release).
	Alpine     string
	Kernel     Kernel
	Packages   []Package
	Components []Component
	// Firmware are the firmware.conf entries taken from FIRMWARE_DIR
	// (entries installed from Alpine packages are in Packages).
	Firmware []FirmwareEntry
	Flists   []Flist
	// Files are the regular files of the initramfs, sorted by path, except
	// the SBOM itself (EmbeddedPath).
	Files []File
}

// Kernel describes the kernel the image boots.
type Kernel struct {
	Version     string // upstream version (KERNEL_VERSION or the tarball's)
	FullVersion string // Version + CONFIG_LOCALVERSION: uname -r, /lib/modules/<FullVersion>
	// ConfigSHA256 is the sha256 of the kernel config the build used
	// (config/kernel.config, or the profile's).
	ConfigSHA256 string
	ConfigSHA1   string // SPDX wants a SHA-1 of every file
}

// Component is one sources.conf component as it was built into the image.
type Component struct {
	Name    string
	Type    string // git, release or local
	Source  string // clone URL, download URL or path; credentials removed
	Version string // VERSION of sources.conf: tag, branch or commit
	// Revision is the commit a git component was built from ("-dirty" when
	// its checkout had local changes); "" for other types.
	Revision string
	// Checksum pins a release download: sha256 hex, or md5:<hex> where
	// upstream publishes only an MD5 (sources.conf).
	Checksum    string
	Recipe      string // the BUILD field: go, cargo-musl:zinit, make...
	InstallPath string // absolute path of the binary in the image
	// BinarySHA256 is the sha256 of the binary in the image (after strip
	// and UPX).
	BinarySHA256 string
}

// FirmwareEntry is a firmware.conf entry whose files came from
// FIRMWARE_DIR/<Name>/ into lib/firmware/<Name>/.
type FirmwareEntry struct {
	Name string
}

// Package name of a firmware entry in the SBOM and in File.Owner.
func (f FirmwareEntry) Package() string { return FirmwarePackagePrefix + f.Name }

// FirmwarePackagePrefix names the package of a FIRMWARE_DIR entry, as
// Alpine's linux-firmware-<entry> names its own.
const FirmwarePackagePrefix = "firmware-dir-"

// Flist is an rfs flist the image mounts at boot.
type Flist struct {
	Name string // file name of the .fl, e.g. modules-6.1.0-Zero-OS.fl
	Kind string // FlistModules or FlistFirmware
	// SHA256 of the .fl manifest: it pins every file and block.
	SHA256 string
	// MountPoint is where nodes mount it, relative to the root
	// (lib/modules/<FullVersion>, lib/firmware).
	MountPoint string
	// Routes are the stores nodes fetch blocks from, without credentials.
	Routes []string
	// Files are its regular files, paths relative to the flist's root. The
	// copy embedded in the image leaves them out (the manifest, pinned by
	// SHA256, is in /etc/rfs next to it); FilesListed says which.
	Files       []File
	FilesListed bool
}

// Kinds of flist.
const (
	FlistModules  = "modules"
	FlistFirmware = "firmware"
)

// File is a regular file of the image or of an flist.
type File struct {
	Path   string // slash-separated, relative, no leading "./"
	Size   int64
	SHA1   string
	SHA256 string
	Kind   Kind
	// Owner names what the file comes from: the apk package, the
	// component, the firmware package, the config source (config/init,
	// zinit/) or the stage that generated it (modules_copy...). Modules
	// are owned by OwnerModules.
	Owner string
	// blocks identifies the content of an flist file read from a
	// manifest alone (a hash of its block keys), where no SHA-256 is known.
	blocks string
}

// Kind is what a file is, for the accounting and the diff.
type Kind string

// File kinds.
const (
	KindPackage   Kind = "package"   // installed by an apk package
	KindComponent Kind = "component" // a sources.conf component's binary
	KindModule    Kind = "module"    // a kernel module (.ko, .ko.xz, .ko.zst, .ko.gz)
	KindFirmware  Kind = "firmware"  // under lib/firmware
	KindConfig    Kind = "config"    // the project's own files: /init, the zinit units
	KindGenerated Kind = "generated" // written by a build stage from other inputs
	KindUnknown   Kind = ""          // nothing explains it
)

// OwnerModules owns the kernel modules of the image and of the modules
// flist (they come from the kernel build).
const OwnerModules = "linux-modules"
