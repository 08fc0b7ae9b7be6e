// Command tlogverify checks a C2SP tlog-tiles log on disk with code trace-stream did not
// write: golang.org/x/mod/sumdb/note (signed notes), github.com/transparency-dev/formats
// (checkpoints) and golang.org/x/mod/sumdb/tlog (tiles, RFC 6962 proofs).
//
//	tlogverify -key VKEY -origin ORIGIN -log DIR [-old CHECKPOINT_FILE]
//
// It checks the checkpoint's signature and origin; reads the hash tiles through
// tlog.TileHashReader, which checks every tile it reads against the signed root; checks
// the inclusion proof of every entry of every entry bundle; and, given an older
// checkpoint, the consistency proof from it. It prints one "ok" line, or the failure
// on stderr with exit status 1.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return height }

// c2spPath maps x/mod's sumdb tile path (tile/8/L/N[.p/W]) to C2SP's (tile/L/N[.p/W]).
func c2spPath(t tlog.Tile) string {
	return "tile/" + strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", height))
}

func (d dirTiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		data, err := os.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil {
			return nil, fmt.Errorf("tile %s: %w", c2spPath(t), err)
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func readCheckpoint(path, origin string, v note.Verifier) (*log.Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cp, _, _, err := log.ParseCheckpoint(data, origin, v)
	return cp, err
}

func bundle(dir string, n, width int64) ([][]byte, error) {
	t := tlog.Tile{H: height, L: 0, N: n, W: int(width)}
	path := filepath.Join(dir, "tile", "entries", strings.TrimPrefix(c2spPath(t), "tile/0/"))
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("%s: truncated length", path)
		}
		size := int(data[0])<<8 | int(data[1])
		if len(data) < 2+size {
			return nil, fmt.Errorf("%s: truncated entry", path)
		}
		entries = append(entries, data[2:2+size])
		data = data[2+size:]
	}
	if int64(len(entries)) != width {
		return nil, fmt.Errorf("%s: %d entries, want %d", path, len(entries), width)
	}
	return entries, nil
}

func run(vkey, origin, dir, old string) (string, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return "", fmt.Errorf("verifier key: %w", err)
	}
	cp, err := readCheckpoint(filepath.Join(dir, "checkpoint"), origin, v)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	tree := tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Hash)}
	hr := tlog.TileHashReader(tree, dirTiles{dir})
	for n := int64(0); n*256 < tree.N; n++ {
		width := min(256, tree.N-n*256)
		entries, err := bundle(dir, n, width)
		if err != nil {
			return "", err
		}
		for i, e := range entries {
			index := n*256 + int64(i)
			proof, err := tlog.ProveRecord(tree.N, index, hr)
			if err != nil {
				return "", fmt.Errorf("entry %d: proof: %w", index, err)
			}
			if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(e)); err != nil {
				return "", fmt.Errorf("entry %d: inclusion: %w", index, err)
			}
		}
	}
	msg := fmt.Sprintf("ok: %s size %d, signature and %d inclusion proofs verified", cp.Origin, cp.Size, tree.N)
	if old != "" {
		prev, err := readCheckpoint(old, origin, v)
		if err != nil {
			return "", fmt.Errorf("old checkpoint: %w", err)
		}
		proof, err := tlog.ProveTree(tree.N, int64(prev.Size), hr)
		if err != nil {
			return "", fmt.Errorf("consistency proof: %w", err)
		}
		if err := tlog.CheckTree(proof, tree.N, tree.Hash, int64(prev.Size), tlog.Hash(prev.Hash)); err != nil {
			return "", fmt.Errorf("consistency from %d: %w", prev.Size, err)
		}
		msg += fmt.Sprintf(", consistent with size %d", prev.Size)
	}
	return msg, nil
}

func main() {
	key := flag.String("key", "", "verifier key <name>+<id>+<base64>")
	origin := flag.String("origin", "", "the log's origin line")
	dir := flag.String("log", "", "the log's folder")
	old := flag.String("old", "", "an older checkpoint of the same log")
	flag.Parse()
	msg, err := run(*key, *origin, *dir, *old)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlogverify:", err)
		os.Exit(1)
	}
	fmt.Println(msg)
}
