package flist

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"

	"github.com/golang/snappy"
	"golang.org/x/crypto/blake2b"
)

// BlockSize is the size rfs cuts files into: every block of a file is this
// long except the last. rfs's FUSE reader finds a file offset's block by
// dividing by BlockSize, so a short block in the middle would break mounts.
const BlockSize = 512 * 1024

// HashSize is the length of a block id and key: BLAKE2b-256.
const HashSize = 32

// ErrCorruptBlock means a blob does not decrypt or decompress with its key,
// or its content does not hash to the key.
var ErrCorruptBlock = errors.New("corrupt block")

// Block is one row of an flist's block table. Key is the BLAKE2b-256 of the
// plain chunk and the AES-256-GCM key of the blob; ID is the BLAKE2b-256 of
// the encrypted blob and its name in the store. Equal chunks give equal
// blobs (convergent encryption), so stores deduplicate them.
type Block struct {
	ID, Key [HashSize]byte
}

// Encoder turns plain chunks into rfs blobs. It reuses one buffer, so the
// blob Encode returns is valid only until the next call; use one Encoder per
// goroutine.
type Encoder struct {
	buf []byte // compressed, then sealed in place
}

// gcmTagSize is the length of the AES-GCM tag appended to a blob.
const gcmTagSize = 16

// Encode returns the block row and the blob of one plain chunk:
// key = BLAKE2b-256(plain), blob = AES-256-GCM(key, nonce key[:12],
// snappy-raw(plain)) with the tag appended, id = BLAKE2b-256(blob).
func (e *Encoder) Encode(plain []byte) (Block, []byte, error) {
	return e.encodeKeyed(plain, blake2b.Sum256(plain))
}

// encodeKeyed is Encode with the key, BLAKE2b-256(plain), already known.
func (e *Encoder) encodeKeyed(plain []byte, key [HashSize]byte) (Block, []byte, error) {
	b := Block{Key: key}
	if need := snappy.MaxEncodedLen(len(plain)) + gcmTagSize; cap(e.buf) < need {
		// Sized for a whole block at once: a buffer of this size is
		// page-aligned, which lets a dir store write it with O_DIRECT.
		e.buf = make([]byte, max(need, snappy.MaxEncodedLen(BlockSize)+gcmTagSize))
	}
	// golang/snappy's block encoder is byte-identical to the Rust snap crate
	// rfs uses; any other "snappy-compatible" encoder changes every id.
	compressed := snappy.Encode(e.buf[:cap(e.buf)], plain)
	gcm, err := newGCM(b.Key[:])
	if err != nil {
		return b, nil, err
	}
	// Sealed in place: the compressed chunk is not needed afterwards.
	sealed := gcm.Seal(compressed[:0], b.Key[:gcm.NonceSize()], compressed, nil)
	b.ID = blake2b.Sum256(sealed)
	return b, sealed, nil
}

// EncodeBlock is Encode with fresh buffers.
func EncodeBlock(plain []byte) (Block, []byte, error) {
	var e Encoder
	return e.Encode(plain)
}

// DecodeBlock decrypts and decompresses a blob with its block key. It does
// not check the id or the content's hash (CheckBlock does): readers of an
// flist use the checked path.
func DecodeBlock(key [HashSize]byte, blob []byte) ([]byte, error) {
	gcm, err := newGCM(key[:])
	if err != nil {
		return nil, err
	}
	compressed, err := gcm.Open(nil, key[:gcm.NonceSize()], blob, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", ErrCorruptBlock)
	}
	// snappy.Decode allocates the length the header claims (up to 4 GiB);
	// whoever chose the key chose that header.
	if n, err := snappy.DecodedLen(compressed); err != nil || n > BlockSize {
		return nil, fmt.Errorf("decompress: content longer than a block: %w", ErrCorruptBlock)
	}
	plain, err := snappy.Decode(nil, compressed)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", ErrCorruptBlock)
	}
	return plain, nil
}

// CheckBlock verifies a blob completely: its hash is the block id, it
// decodes with the key, and the plain content hashes to the key.
func CheckBlock(b Block, blob []byte) error {
	_, err := decodeChecked(b, blob)
	return err
}

// decodeChecked is DecodeBlock plus the checks of CheckBlock.
func decodeChecked(b Block, blob []byte) ([]byte, error) {
	if blake2b.Sum256(blob) != b.ID {
		return nil, fmt.Errorf("blob does not hash to its id: %w", ErrCorruptBlock)
	}
	plain, err := DecodeBlock(b.Key, blob)
	if err != nil {
		return nil, err
	}
	if blake2b.Sum256(plain) != b.Key {
		return nil, fmt.Errorf("content does not hash to its key: %w", ErrCorruptBlock)
	}
	return plain, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	c, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	gcm, err := cipher.NewGCM(c)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return gcm, nil
}

// Chunker cuts a reader into BlockSize chunks the way rfs's writer must:
// io.ReadFull fills every chunk, so only the last one may be short, and an
// empty input has no chunk at all.
type Chunker struct {
	r   io.Reader
	buf []byte
}

// NewChunker returns a Chunker over r with its own BlockSize buffer.
func NewChunker(r io.Reader) *Chunker { return &Chunker{r: r, buf: make([]byte, BlockSize)} }

// Reset points the Chunker at a new reader, keeping its buffer.
func (c *Chunker) Reset(r io.Reader) { c.r = r }

// Next returns the next chunk, valid until the following call, or io.EOF.
func (c *Chunker) Next() ([]byte, error) {
	n, err := io.ReadFull(c.r, c.buf)
	switch {
	case err == nil || errors.Is(err, io.ErrUnexpectedEOF):
		return c.buf[:n], nil
	case errors.Is(err, io.EOF):
		return nil, io.EOF
	default:
		return nil, err
	}
}
