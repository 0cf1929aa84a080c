package did

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intercooperative/icn/internal/fsowner"
)

const (
	// KeystoreFile is the keystore's file name inside a data directory.
	KeystoreFile = "identity.age"
	// DefaultWorkFactor is the scrypt log2 work factor used for writes when
	// none is configured (about one second on a modern machine).
	DefaultWorkFactor = 18
	// MaxWorkFactor is the largest scrypt log2 work factor accepted when
	// decrypting, bounding the work an untrusted file can demand.
	MaxWorkFactor = 22
	// MaxKeystoreSize bounds both the encrypted file and its plaintext.
	MaxKeystoreSize = 1 << 20
	// bundleVersion is the only bundle format version understood.
	bundleVersion = 1
)

// Sentinel errors. Test with errors.Is; returned errors add detail.
var (
	// ErrWrongPassphrase means the keystore is a passphrase-encrypted age
	// file, but the passphrase does not open it.
	//lint:ignore ST1005 "Failed to unlock keystore" is a contract phrase operators grep for.
	ErrWrongPassphrase = errors.New("Failed to unlock keystore: wrong passphrase")
	// ErrNotKeystore means the data is not an age file, not passphrase
	// (scrypt) encrypted, or decrypts to something that is not a valid
	// identity bundle.
	ErrNotKeystore = errors.New("not an ICN keystore")
	// ErrKeystoreExists means a keystore file is already present.
	ErrKeystoreExists = errors.New("keystore already exists")
	// ErrNoKeystore means the keystore file does not exist.
	ErrNoKeystore = errors.New("no keystore")
)

// Identity is an unlocked keystore.
//
// Identity holds private keys: its Format method redacts them, so printing
// an Identity with the fmt package never shows key material.
type Identity struct {
	DID       DID
	DIDKey    ed25519.PrivateKey
	NodeKey   crypto.PrivKey // libp2p Ed25519 private key; equals DIDKey after Generate
	Binding   Binding        // current binding of DID -> NodeKey's peer ID
	CreatedAt time.Time
	Rotations []Binding // earlier bindings, oldest first (rotation chain)
}

// Generate creates a new identity at time now: a fresh Ed25519 DID key that
// is also the node key, bound with sequence number 1.
func Generate(now time.Time) (*Identity, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate DID key: %w", err)
	}
	d, err := FromPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("generate DID key: %w", err)
	}
	nodeKey, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("convert DID key to node key: %w", err)
	}
	b, err := NewBinding(priv, d.PeerID(), 1, now)
	if err != nil {
		return nil, fmt.Errorf("bind node key: %w", err)
	}
	return &Identity{DID: d, DIDKey: priv, NodeKey: nodeKey, Binding: b, CreatedAt: now}, nil
}

// PeerID returns the peer ID of the current node key, or "" if there is none.
func (id *Identity) PeerID() peer.ID {
	if id.NodeKey == nil {
		return ""
	}
	pid, err := peer.IDFromPrivateKey(id.NodeKey)
	if err != nil {
		return ""
	}
	return pid
}

// Rotate replaces the node key with a fresh Ed25519 key, keeping the DID. The
// current binding is appended to Rotations and a new binding with the next
// sequence number, signed by the DID key, becomes current.
func (id *Identity) Rotate(now time.Time) error {
	nodeKey, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate node key: %w", err)
	}
	pid, err := peer.IDFromPrivateKey(nodeKey)
	if err != nil {
		return fmt.Errorf("derive peer ID: %w", err)
	}
	b, err := NewBinding(id.DIDKey, pid, id.Binding.Seq+1, now)
	if err != nil {
		return fmt.Errorf("bind node key: %w", err)
	}
	id.Rotations = append(id.Rotations, id.Binding)
	id.Binding = b
	id.NodeKey = nodeKey
	return nil
}

// Sign signs msg with the DID key.
func (id *Identity) Sign(msg []byte) []byte {
	return ed25519.Sign(id.DIDKey, msg)
}

// String describes the identity without any key material.
func (id Identity) String() string {
	return fmt.Sprintf("Identity{DID: %s, PeerID: %s, Seq: %d}", id.DID, id.PeerID(), id.Binding.Seq)
}

// Format implements fmt.Formatter so that every verb (including %#v and %x)
// prints the redacted [Identity.String] form instead of private keys.
func (id Identity) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, id.String())
}

// bundle is the JSON document inside the age encryption.
type bundle struct {
	Version   int       `json:"version"`
	DID       DID       `json:"did"`
	DIDKey    []byte    `json:"did_key"`  // 64-byte Ed25519 private key
	NodeKey   []byte    `json:"node_key"` // crypto.MarshalPrivateKey
	Binding   Binding   `json:"binding"`
	CreatedAt string    `json:"created_at"` // RFC 3339
	Rotations []Binding `json:"rotations"`
}

// encodeBundle validates id and returns its JSON bundle. The result holds
// private keys in clear: callers must encrypt it and then wipe it.
func encodeBundle(id *Identity) ([]byte, error) {
	if id == nil {
		return nil, errors.New("identity is nil")
	}
	if id.NodeKey == nil {
		return nil, errors.New("identity has no node key")
	}
	nodeKey, err := crypto.MarshalPrivateKey(id.NodeKey)
	if err != nil {
		return nil, fmt.Errorf("marshal node key: %w", err)
	}
	rotations := id.Rotations
	if rotations == nil {
		rotations = []Binding{}
	}
	data, err := json.Marshal(bundle{
		Version:   bundleVersion,
		DID:       id.DID,
		DIDKey:    id.DIDKey,
		NodeKey:   nodeKey,
		Binding:   id.Binding,
		CreatedAt: id.CreatedAt.UTC().Format(time.RFC3339Nano),
		Rotations: rotations,
	})
	wipe(nodeKey)
	if err != nil {
		return nil, fmt.Errorf("marshal identity: %w", err)
	}
	// Refuse to write anything we would not be able to read back.
	if _, err := decodeBundle(data); err != nil {
		wipe(data)
		return nil, fmt.Errorf("identity is not valid: %w", err)
	}
	return data, nil
}

// decodeBundle parses and fully validates the JSON bundle. Every error wraps
// ErrNotKeystore.
func decodeBundle(plaintext []byte) (*Identity, error) {
	id, err := parseBundle(plaintext)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotKeystore, err)
	}
	return id, nil
}

func parseBundle(plaintext []byte) (*Identity, error) {
	if len(plaintext) > MaxKeystoreSize {
		return nil, fmt.Errorf("bundle is %d bytes, limit is %d", len(plaintext), MaxKeystoreSize)
	}
	var b bundle
	if err := strictUnmarshal(plaintext, &b); err != nil {
		return nil, fmt.Errorf("parse bundle: %w", err)
	}
	if b.Version != bundleVersion {
		return nil, fmt.Errorf("unsupported bundle version %d, want %d", b.Version, bundleVersion)
	}
	if b.DID.IsZero() {
		return nil, errors.New("bundle has no DID")
	}

	// DID key: the stored public half must be the one the seed derives.
	if len(b.DIDKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("DID key is %d bytes, want %d", len(b.DIDKey), ed25519.PrivateKeySize)
	}
	didKey := ed25519.NewKeyFromSeed(b.DIDKey[:ed25519.SeedSize])
	consistent := subtle.ConstantTimeCompare(didKey, b.DIDKey) == 1
	wipe(b.DIDKey)
	if !consistent {
		return nil, errors.New("DID key is corrupt: public half does not match seed")
	}
	keyDID, err := FromPublicKey(didKey.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("DID key: %w", err)
	}
	if keyDID != b.DID {
		return nil, fmt.Errorf("DID %s does not match DID key (%s)", b.DID, keyDID)
	}

	// Node key: libp2p Ed25519, internally consistent.
	nodeKey, err := crypto.UnmarshalPrivateKey(b.NodeKey)
	wipe(b.NodeKey)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	if nodeKey.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("node key type %s is not Ed25519", nodeKey.Type())
	}
	raw, err := nodeKey.Raw()
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	consistent = len(raw) == ed25519.PrivateKeySize &&
		subtle.ConstantTimeCompare(ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize]), raw) == 1
	wipe(raw)
	if !consistent {
		return nil, errors.New("node key is corrupt: public half does not match seed")
	}
	nodePID, err := peer.IDFromPrivateKey(nodeKey)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}

	// Current binding: signed by the DID, naming the node key.
	if err := b.Binding.Verify(); err != nil {
		return nil, fmt.Errorf("binding: %w", err)
	}
	if b.Binding.DID != b.DID {
		return nil, fmt.Errorf("binding is for %s, not %s", b.Binding.DID, b.DID)
	}
	if b.Binding.PeerID != nodePID {
		return nil, fmt.Errorf("binding names peer %s but node key is %s", b.Binding.PeerID, nodePID)
	}

	// Rotation chain: oldest first, same DID, strictly increasing Seq.
	var rotations []Binding
	for i, r := range b.Rotations {
		if err := r.Verify(); err != nil {
			return nil, fmt.Errorf("rotation %d: %w", i, err)
		}
		if r.DID != b.DID {
			return nil, fmt.Errorf("rotation %d is for %s, not %s", i, r.DID, b.DID)
		}
		next := b.Binding
		if i+1 < len(b.Rotations) {
			next = b.Rotations[i+1]
		}
		if r.Seq >= next.Seq {
			return nil, fmt.Errorf("rotation %d has seq %d, not below the next seq %d", i, r.Seq, next.Seq)
		}
		rotations = append(rotations, r)
	}

	createdAt, err := time.Parse(time.RFC3339Nano, b.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("created_at: %w", err)
	}
	return &Identity{
		DID:       b.DID,
		DIDKey:    didKey,
		NodeKey:   nodeKey,
		Binding:   b.Binding,
		CreatedAt: createdAt,
		Rotations: rotations,
	}, nil
}

// Encrypt returns id as an age file (binary, not armored) encrypted with an
// scrypt passphrase recipient. workFactor is the scrypt log2 work factor;
// 0 means [DefaultWorkFactor].
func Encrypt(id *Identity, passphrase string, workFactor int) ([]byte, error) {
	if workFactor == 0 {
		workFactor = DefaultWorkFactor
	}
	if workFactor < 1 || workFactor > MaxWorkFactor {
		return nil, fmt.Errorf("scrypt work factor %d out of range 1..%d", workFactor, MaxWorkFactor)
	}
	if passphrase == "" {
		return nil, errors.New("passphrase is empty")
	}
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	r.SetWorkFactor(workFactor)

	plaintext, err := encodeBundle(id)
	if err != nil {
		return nil, err
	}
	defer wipe(plaintext)

	var out bytes.Buffer
	w, err := age.Encrypt(&out, r)
	if err != nil {
		return nil, fmt.Errorf("encrypt keystore: %w", err)
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, fmt.Errorf("encrypt keystore: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypt keystore: %w", err)
	}
	return out.Bytes(), nil
}

// Decrypt opens an age keystore (binary or armored) with passphrase and
// validates the bundle. A wrong passphrase yields an error wrapping
// [ErrWrongPassphrase]; anything that is not a passphrase-encrypted ICN
// keystore yields one wrapping [ErrNotKeystore]. Files demanding a scrypt
// work factor above [MaxWorkFactor] are rejected.
func Decrypt(data []byte, passphrase string) (*Identity, error) {
	return decrypt(data, passphrase, MaxWorkFactor)
}

// decrypt is Decrypt with a configurable maximum scrypt work factor, so
// fuzzing can keep the work bounded.
func decrypt(data []byte, passphrase string, maxWorkFactor int) (*Identity, error) {
	if len(data) > MaxKeystoreSize {
		return nil, fmt.Errorf("%w: file is %d bytes, limit is %d", ErrNotKeystore, len(data), MaxKeystoreSize)
	}
	if passphrase == "" {
		return nil, fmt.Errorf("%w: passphrase is empty", ErrWrongPassphrase)
	}
	ident, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWrongPassphrase, err)
	}
	ident.SetMaxWorkFactor(maxWorkFactor)

	var src io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header)) {
		src = armor.NewReader(bytes.NewReader(data))
	}
	r, err := age.Decrypt(src, ident)
	if err != nil {
		return nil, classifyAgeError(err)
	}
	plaintext, err := io.ReadAll(io.LimitReader(r, MaxKeystoreSize+1))
	defer wipe(plaintext)
	if err != nil {
		return nil, fmt.Errorf("%w: decrypt: %w", ErrNotKeystore, err)
	}
	if len(plaintext) > MaxKeystoreSize {
		return nil, fmt.Errorf("%w: plaintext exceeds %d bytes", ErrNotKeystore, MaxKeystoreSize)
	}
	return decodeBundle(plaintext)
}

// classifyAgeError maps an age.Decrypt error to ErrWrongPassphrase (a file
// with exactly one scrypt stanza that the passphrase does not open) or
// ErrNotKeystore (everything else).
func classifyAgeError(err error) error {
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		if len(noMatch.StanzaTypes) == 1 && noMatch.StanzaTypes[0] == "scrypt" {
			return ErrWrongPassphrase
		}
		return fmt.Errorf("%w: not passphrase-encrypted (recipient types %q)", ErrNotKeystore, noMatch.StanzaTypes)
	}
	return fmt.Errorf("%w: %w", ErrNotKeystore, err)
}

// Keystore is the identity.age file in a data dir.
//
// Keystore does not lock the file: callers must not run several writers on
// the same data dir at once.
type Keystore struct {
	Path       string
	WorkFactor int // scrypt log2 work factor for writes; 0 = DefaultWorkFactor
}

// Open returns the keystore at dataDir/identity.age. It does not touch the
// file system.
func Open(dataDir string) Keystore {
	return Keystore{Path: filepath.Join(dataDir, KeystoreFile)}
}

// Exists reports whether the keystore file exists.
func (k Keystore) Exists() (bool, error) {
	_, err := os.Lstat(k.Path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, k.accessError("check", fmt.Errorf("check keystore: %w", err))
	}
}

// AccessError is a keystore this process may not read or write: the file,
// or a directory above it, belongs to another user or is closed to this
// one. It names the owner, and its Hint says what to run.
type AccessError struct {
	Op    string // "check", "read" or "write"
	Path  string // the keystore file
	Owner string // the user owning At ("" if it could not be looked at)
	At    string // Path, or the nearest directory above it this process can look at
	User  string // the user this process runs as
	// DirOwner is the user owning the keystore's directory ("" if unknown).
	DirOwner string
	Err      error // the underlying error (wraps fs.ErrPermission)
}

func (e *AccessError) Error() string {
	msg := e.Err.Error()
	if e.Owner == "" {
		return msg
	}
	return fmt.Sprintf("%s (%s belongs to %s; this runs as %s)", msg, e.At, e.Owner, e.User)
}

func (e *AccessError) Unwrap() error { return e.Err }

// Hint says how to get access: hand the keystore to the data dir's user
// when only the file is someone else's (made with sudo, say), else run as
// the owner, or hand the data dir over.
func (e *AccessError) Hint() string {
	switch {
	case e.Owner == "":
		return "check the permissions of " + e.Path + " and the directories above it"
	case e.Owner == e.User:
		return "it is yours but closed: `chmod 700 " + filepath.Dir(e.Path) + " && chmod 600 " + e.Path + "`"
	case e.At == e.Path && e.DirOwner == e.User:
		return "the data dir is " + e.User + "'s but the keystore is " + e.Owner + "'s (created with sudo?): `sudo chown " +
			e.User + " " + e.Path + "`"
	}
	chown := "sudo chown " + e.User + " " + e.At
	if e.At != e.Path {
		chown = "sudo chown -R " + e.User + " " + e.At
	}
	return "run the command as " + e.Owner + " (prefix it with `sudo -u " + e.Owner + "`), or, if the identity should be " +
		e.User + "'s, `" + chown + "`"
}

// accessError turns a permission error on the keystore into an
// *AccessError naming the owner; other errors are returned as they are.
func (k Keystore) accessError(op string, err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	owner, at := fsowner.Of(k.Path)
	dirOwner, dir := fsowner.Of(filepath.Dir(k.Path))
	if dir != filepath.Dir(k.Path) {
		dirOwner = ""
	}
	return &AccessError{Op: op, Path: k.Path, Owner: owner, At: at, User: fsowner.Current(), DirOwner: dirOwner, Err: err}
}

// Create generates a new identity and writes it encrypted with passphrase.
// It fails with [ErrKeystoreExists], leaving the file untouched, if the
// keystore already exists. The parent directory is created (0700) if
// missing and the file is written 0600.
func (k Keystore) Create(passphrase string, now time.Time) (*Identity, error) {
	if err := k.refuseExisting(); err != nil {
		return nil, err
	}
	id, err := Generate(now)
	if err != nil {
		return nil, err
	}
	if err := k.write(id, passphrase, false); err != nil {
		return nil, err
	}
	return id, nil
}

// Unlock reads and decrypts the keystore. It fails with [ErrNoKeystore] if
// the file does not exist.
func (k Keystore) Unlock(passphrase string) (*Identity, error) {
	data, err := readLimited(k.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: run `icnctl id init` to create one", ErrNoKeystore, k.Path)
	}
	if err != nil {
		return nil, k.accessError("read", fmt.Errorf("read keystore: %w", err))
	}
	id, err := Decrypt(data, passphrase)
	if errors.Is(err, ErrWrongPassphrase) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.Path, err)
	}
	return id, nil
}

// Save atomically writes id encrypted with passphrase, replacing any
// existing keystore: it writes a 0600 temporary file in the same directory,
// syncs it, renames it over the keystore and syncs the directory.
func (k Keystore) Save(id *Identity, passphrase string) error {
	return k.write(id, passphrase, true)
}

// Export unlocks the keystore (proving the passphrase) and writes a freshly
// encrypted copy, under the same passphrase, to dest (0600). It refuses to
// overwrite an existing dest.
func (k Keystore) Export(passphrase, dest string) error {
	id, err := k.Unlock(passphrase)
	if err != nil {
		return err
	}
	data, err := Encrypt(id, passphrase, k.WorkFactor)
	if err != nil {
		return err
	}
	err = writeFileAtomic(dest, data, false)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("export destination %s already exists, refusing to overwrite it: %w", dest, err)
	}
	if err != nil {
		return fmt.Errorf("export keystore: %w", err)
	}
	return nil
}

// Import installs the keystore at src, which must decrypt with passphrase to
// a valid bundle before anything is touched. If a keystore exists and force
// is false it fails with [ErrKeystoreExists] and leaves it untouched;
// otherwise it atomically replaces it with a copy re-encrypted under
// passphrase and k.WorkFactor.
func (k Keystore) Import(src, passphrase string, force bool) (*Identity, error) {
	data, err := readLimited(src)
	if err != nil {
		return nil, fmt.Errorf("read import file: %w", err)
	}
	id, err := Decrypt(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	if !force {
		if err := k.refuseExisting(); err != nil {
			return nil, err
		}
	}
	if err := k.write(id, passphrase, force); err != nil {
		return nil, err
	}
	return id, nil
}

// Rotate unlocks the keystore, rotates the node key (see [Identity.Rotate])
// and saves the result atomically.
func (k Keystore) Rotate(passphrase string, now time.Time) (*Identity, error) {
	id, err := k.Unlock(passphrase)
	if err != nil {
		return nil, err
	}
	if err := id.Rotate(now); err != nil {
		return nil, err
	}
	if err := k.Save(id, passphrase); err != nil {
		return nil, err
	}
	return id, nil
}

// refuseExisting returns an error wrapping ErrKeystoreExists if the keystore
// file exists.
func (k Keystore) refuseExisting() error {
	exists, err := k.Exists()
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("%w at %s", ErrKeystoreExists, k.Path)
	}
	return nil
}

// write encrypts id and writes it to the keystore path, creating the parent
// directory (0700) if needed. Without overwrite an existing file is never
// replaced.
func (k Keystore) write(id *Identity, passphrase string, overwrite bool) error {
	data, err := Encrypt(id, passphrase, k.WorkFactor)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return k.accessError("write", fmt.Errorf("create keystore directory: %w", err))
	}
	err = writeFileAtomic(k.Path, data, overwrite)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w at %s", ErrKeystoreExists, k.Path)
	}
	if err != nil {
		return k.accessError("write", fmt.Errorf("write keystore: %w", err))
	}
	return nil
}

// writeFileAtomic writes data to path via a synced 0600 temporary file in
// the same directory. With overwrite it renames the temporary file over
// path; without, it hard-links it into place, which fails with an error
// wrapping fs.ErrExist if path exists. The directory is synced afterwards.
func writeFileAtomic(path string, data []byte, overwrite bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpPath := tmp.Name()
	defer func() {
		if tmp != nil {
			_ = tmp.Close()
		}
		_ = os.Remove(tmpPath) // no-op after a successful rename
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	w := bufio.NewWriter(tmp)
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	err = tmp.Close()
	tmp = nil
	if err != nil {
		return err
	}
	if overwrite {
		if err := os.Rename(tmpPath, path); err != nil {
			return err
		}
	} else if err := os.Link(tmpPath, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
		}
		// The file system may not support hard links; fall back to a
		// checked rename (racy only against concurrent writers).
		if _, statErr := os.Lstat(path); statErr == nil {
			return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
		}
		if err := os.Rename(tmpPath, path); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory so a rename or link in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// readLimited reads a file of at most MaxKeystoreSize bytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeystoreSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxKeystoreSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrNotKeystore, path, MaxKeystoreSize)
	}
	return data, nil
}

// wipe zeroes b. It is best effort: copies made elsewhere (for example by
// encoding/json) are not reached.
func wipe(b []byte) {
	clear(b)
}
