package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/intercooperative/icn/did"
	"github.com/intercooperative/icn/node/config"
	"github.com/intercooperative/icn/node/controlapi"
)

// idInfo is the JSON shape of id init/show/import/rotate.
type idInfo struct {
	DID        string `json:"did"`
	PeerID     string `json:"peer_id"`
	BindingSeq uint64 `json:"binding_seq"`
	Keystore   string `json:"keystore,omitempty"`
}

func infoOf(id *did.Identity, path string) idInfo {
	return idInfo{DID: id.DID.String(), PeerID: id.PeerID().String(), BindingSeq: id.Binding.Seq, Keystore: path}
}

func (a *app) printID(info idInfo, lead string) error {
	return a.output(info, func(w io.Writer) {
		if lead != "" {
			fmt.Fprintln(w, lead)
		}
		fmt.Fprintf(w, "did:      %s\npeer_id:  %s\n", info.DID, info.PeerID)
		if info.Keystore != "" {
			fmt.Fprintf(w, "keystore: %s\n", info.Keystore)
		}
	})
}

func (a *app) idCmd() *cobra.Command {
	cmd := group("id", "Manage this node's identity keystore (identity.age)")
	cmd.AddCommand(a.idInitCmd(), a.idShowCmd(), a.idExportCmd(), a.idImportCmd(), a.idRotateCmd())
	return cmd
}

func (a *app) idInitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a new identity (refuses to overwrite an existing one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := a.keystore()
			if err != nil {
				return err
			}
			if ok, err := ks.Exists(); err != nil {
				return err
			} else if ok {
				return withHint(fmt.Errorf("%w at %s; it was left untouched", did.ErrKeystoreExists, ks.Path),
					"`icnctl id show` prints it; to replace it use `icnctl id import FILE --force`")
			}
			dir, _ := a.dataDir()
			if err := config.EnsureDataDir(dir); err != nil {
				return err
			}
			pass, err := a.pass.Get("New keystore passphrase: ", true)
			if err != nil {
				return err
			}
			warnWeak(a.stderr, pass)
			id, err := ks.Create(pass, time.Now())
			if err != nil {
				return err
			}
			return a.printID(infoOf(id, ks.Path), "Created a new identity. Back up identity.age and its passphrase: losing either loses the identity.")
		},
	}
}

func warnWeak(w io.Writer, pass string) {
	if len(pass) < 12 {
		fmt.Fprintln(w, "icnctl: warning: the passphrase is shorter than 12 characters; anyone who copies identity.age can try to guess it")
	}
}

func (a *app) idShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print this node's DID and peer ID (asks the daemon, else unlocks the keystore)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			live, err := call(a, cmd.Context(), controlapi.DefaultTimeout, (*controlapi.Client).Identity)
			if err == nil {
				return a.printID(idInfo{DID: live.DID, PeerID: live.PeerID, BindingSeq: live.BindingSeq}, "")
			}
			if !errors.Is(err, controlapi.ErrDaemonNotRunning) {
				return err
			}
			ks, pass, err := a.openKeystore()
			if err != nil {
				return err
			}
			id, err := ks.Unlock(pass)
			if err != nil {
				return err
			}
			return a.printID(infoOf(id, ks.Path), "")
		},
	}
}

// openKeystore returns the data dir's keystore and its passphrase; it fails
// with did.ErrNoKeystore before asking for a passphrase if there is none.
func (a *app) openKeystore() (did.Keystore, string, error) {
	ks, err := a.keystore()
	if err != nil {
		return ks, "", err
	}
	if ok, err := ks.Exists(); err != nil {
		return ks, "", err
	} else if !ok {
		return ks, "", fmt.Errorf("%w at %s", did.ErrNoKeystore, ks.Path)
	}
	pass, err := a.pass.Get("Keystore passphrase: ", false)
	return ks, pass, err
}

func (a *app) idExportCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "export FILE [--force]",
		Short: "Write an encrypted backup of the keystore to FILE (never the key in clear)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, pass, err := a.openKeystore()
			if err != nil {
				return err
			}
			if err := exportKeystore(ks, pass, args[0], force); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return withHint(err, "add --force to replace it, or give another FILE")
				}
				return err
			}
			return a.output(map[string]string{"exported": args[0]}, func(w io.Writer) {
				fmt.Fprintf(w, "Exported the keystore to %s (encrypted with the same passphrase).\n", args[0])
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	return cmd
}

// exportKeystore writes the backup to dest. With force an existing dest is
// replaced only once the new backup is complete and synced: it is written
// beside dest and renamed over it, so a failed export leaves the old one.
func exportKeystore(ks did.Keystore, pass, dest string, force bool) error {
	if !force {
		return ks.Export(pass, dest)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".export-*")
	if err != nil {
		return fmt.Errorf("export keystore: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, filepath.Base(dest))
	if err := ks.Export(pass, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("export keystore: %w", err)
	}
	if d, err := os.Open(filepath.Dir(dest)); err == nil {
		_ = d.Sync() // the rename, durable too (best effort)
		d.Close()
	}
	return nil
}

func (a *app) idImportCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Install an exported keystore; checks that it unlocks first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, err := a.keystore()
			if err != nil {
				return err
			}
			if ok, err := ks.Exists(); err != nil {
				return err
			} else if ok && !force {
				return withHint(fmt.Errorf("%w at %s; it was left untouched", did.ErrKeystoreExists, ks.Path),
					"add --force to replace it (export it first if you may need it again)")
			}
			dir, _ := a.dataDir()
			if err := config.EnsureDataDir(dir); err != nil {
				return err
			}
			pass, err := a.pass.Get("Passphrase of the file to import: ", false)
			if err != nil {
				return err
			}
			id, err := ks.Import(args[0], pass, force)
			if err != nil {
				if errors.Is(err, did.ErrNotKeystore) || errors.Is(err, did.ErrWrongPassphrase) {
					return withHint(err, "nothing was changed; the file must be an identity exported by `icnctl id export`, with its passphrase")
				}
				return err
			}
			if err := a.printID(infoOf(id, ks.Path), "Imported the identity."); err != nil {
				return err
			}
			if a.daemonRunning(cmd.Context()) {
				fmt.Fprintln(a.stderr, "icnctl: warning: icnd is running with the previous identity; restart it to use the imported one")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing keystore")
	return cmd
}

func (a *app) idRotateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Replace the node key, keeping the DID; a running icnd re-keys at once",
		Long: "rotate makes a new node (libp2p) key, keeps the DID, and stores a binding record signed by the DID key.\n" +
			"When icnd is running it performs the rotation itself, restarts its host under the new key and reconnects to its peers.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, pass, err := a.openKeystore()
			if err != nil {
				return err
			}
			live, err := call(a, cmd.Context(), time.Minute, func(c *controlapi.Client, ctx context.Context) (controlapi.Identity, error) {
				return c.Rotate(ctx, pass)
			})
			if err == nil {
				return a.printID(idInfo{DID: live.DID, PeerID: live.PeerID, BindingSeq: live.BindingSeq, Keystore: ks.Path},
					"Rotated the node key; icnd now runs under the new peer ID.")
			}
			if !errors.Is(err, controlapi.ErrDaemonNotRunning) {
				return err
			}
			id, err := ks.Rotate(pass, time.Now())
			if err != nil {
				return err
			}
			return a.printID(infoOf(id, ks.Path), "Rotated the node key; icnd will use it when it starts.")
		},
	}
}

func (a *app) daemonRunning(ctx context.Context) bool {
	_, err := call(a, ctx, 2*time.Second, (*controlapi.Client).Identity)
	return err == nil
}
