package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// spool holds one message while it is relayed, so a cut upstream
// connection can be retried from it (DESIGN §4 "Session continuity" 5).
// The first memMax bytes stay in memory; the rest goes to a temporary file
// in dir.
//
// The file is unlinked right after it is created (where the OS allows
// removing an open file), so a crash or a kill -9 never leaves a message
// body on disk; reset removes it otherwise. A spool is used by one session
// at a time and is not safe for concurrent use.
type spool struct {
	dir    string
	memMax int64

	mem      []byte
	f        *os.File
	fileName string // non-empty while the file still has a name to remove
	fileLen  int64
	err      error // first write error; sticky until reset
}

// keepCap is the largest in-memory buffer kept between messages: an idle
// session should not hold on to the 1 MiB of its last big message.
const keepCap = 64 << 10

func newSpool(dir string, memMax int64) *spool {
	return &spool{dir: dir, memMax: memMax}
}

// Write appends p. Errors (disk full, spool dir missing) are sticky.
func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := 0
	if room := s.memMax - int64(len(s.mem)); room > 0 && s.f == nil {
		k := min(int64(len(p)), room)
		s.mem = append(s.mem, p[:k]...)
		n = int(k)
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if s.f == nil {
		if err := s.openFile(); err != nil {
			s.err = err
			return n, err
		}
	}
	m, err := s.f.Write(p)
	s.fileLen += int64(m)
	if err != nil {
		s.err = fmt.Errorf("smtp: spool write: %w", err)
		return n + m, s.err
	}
	return n + m, nil
}

func (s *spool) openFile() error {
	f, err := os.CreateTemp(s.dir, "oauthbridge-smtp-*.spool")
	if err != nil {
		return fmt.Errorf("smtp: spool file: %w", err)
	}
	s.f = f
	if os.Remove(f.Name()) != nil {
		// Windows cannot unlink an open file: remove it in reset.
		s.fileName = f.Name()
	}
	return nil
}

// Len is the number of bytes spooled.
func (s *spool) Len() int64 { return int64(len(s.mem)) + s.fileLen }

// OnDisk reports whether part of the message went to a file.
func (s *spool) OnDisk() bool { return s.f != nil }

// Reader returns the spooled bytes from the start. It stays valid until
// the next Write or reset.
func (s *spool) Reader() io.Reader {
	if s.f == nil {
		return bytes.NewReader(s.mem)
	}
	return io.MultiReader(bytes.NewReader(s.mem), io.NewSectionReader(s.f, 0, s.fileLen))
}

// reset empties the spool, closing and removing its file. It returns the
// file's close or remove error, for the log.
func (s *spool) reset() error {
	var err error
	if s.f != nil {
		err = s.f.Close()
		if s.fileName != "" {
			if rerr := os.Remove(s.fileName); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
		s.f, s.fileName, s.fileLen = nil, "", 0
	}
	if cap(s.mem) > keepCap {
		s.mem = nil
	} else {
		s.mem = s.mem[:0]
	}
	s.err = nil
	return err
}
