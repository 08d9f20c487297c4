package alpine

import (
	"crypto/rsa"
	"crypto/x509"
	"embed"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path"
)

// alpineKeyFiles are Alpine's x86_64 signing keys (keys/README.md says where
// they come from).
//
//go:embed keys/*.rsa.pub
var alpineKeyFiles embed.FS

// AlpineKeys returns the keys Alpine signs its x86_64 repositories with:
// the only keys a build trusts unless ALPINE_EXTRA_KEYS adds some.
func AlpineKeys() Keyring {
	keys, err := loadKeys(alpineKeyFiles, "keys", "keys")
	if err != nil {
		panic("embedded Alpine keys: " + err.Error()) // fixed at compile time
	}
	return keys
}

// TrustedKeys returns Alpine's keys plus the RSA public keys in extraDir
// (ALPINE_EXTRA_KEYS: a private mirror's or a test mirror's key). An empty
// extraDir trusts Alpine's keys alone. A key in extraDir named like one of
// Alpine's is refused: it would replace Alpine's key under Alpine's name.
func TrustedKeys(extraDir string) (Keyring, error) {
	keys := AlpineKeys()
	if extraDir == "" {
		return keys, nil
	}
	extra, err := LoadKeys(extraDir)
	if err != nil {
		return nil, err
	}
	for name, k := range extra {
		if _, clash := keys[name]; clash {
			return nil, fmt.Errorf("apk key %s/%s: has the name of one of Alpine's own keys; give it its own name", extraDir, name)
		}
		keys[name] = k
	}
	return keys, nil
}

// loadKeys reads the PEM public keys in directory dir of fsys, by file name;
// files that hold no PEM block are skipped, so a README can sit beside the
// keys. where names the directory in errors.
func loadKeys(fsys fs.FS, dir, where string) (Keyring, error) {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", where, pathless(err))
	}
	keys := Keyring{}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", where, e.Name(), pathless(err))
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %s/%s: %w", where, e.Name(), err)
		}
		if rk, ok := pub.(*rsa.PublicKey); ok {
			keys[e.Name()] = rk
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no RSA public key in %s", where)
	}
	return keys, nil
}

// pathless drops the fs.FS-relative path of an error (the caller names the
// real one).
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
