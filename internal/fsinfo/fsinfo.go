// Package fsinfo tells what kind of file system holds a path: its type, its
// statfs magic number, whether it is a network or FUSE file system (on which
// SQLite's locks cannot be trusted), and how much room it has.
//
// On Linux, Stat calls statfs(2) and refines the answer with the mount's
// file system type from /proc/self/mountinfo: statfs alone says "FUSE" for
// sshfs and a local FUSE file system alike. On other systems Stat reports
// the type "unknown".
package fsinfo

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Info describes the file system holding a path.
type Info struct {
	Type    string // "ext4", "nfs", "cifs", "fuse.sshfs", "tmpfs", "overlay", ... ("unknown" if not known)
	Magic   int64  // statfs f_type
	Network bool   // NFS, SMB/CIFS, AFS, Coda, 9p, Ceph, Lustre, GlusterFS, GFS2/OCFS2-style cluster fs, sshfs ...: their locks cannot be trusted by SQLite
	FUSE    bool   // a FUSE file system (locking and mmap depend on the FUSE server)
	Avail   uint64 // bytes available to an unprivileged user
	Total   uint64 // bytes in the file system
}

// fsKind is one row of the magic table.
type fsKind struct {
	name          string
	network, fuse bool
}

// magics maps statfs f_type values to file systems. The values are those of
// Linux's include/uapi/linux/magic.h, except GFS2 (fs/gfs2), Lustre, ZFS,
// GPFS and the legacy NTFS driver, which define theirs in their own sources.
// ext2, ext3 and ext4 share one magic number; Stat tells them apart by the
// mount's type.
var magics = map[uint32]fsKind{
	// Network and cluster file systems.
	0x6969:     {"nfs", true, false},
	0x517B:     {"smbfs", true, false}, // SMB_SUPER_MAGIC, the old smbfs
	0xFE534D42: {"smb2", true, false},  // SMB2_SUPER_MAGIC
	0xFF534D42: {"cifs", true, false},  // CIFS_SUPER_MAGIC
	0x73757245: {"coda", true, false},
	0x5346414F: {"afs", true, false}, // AFS_SUPER_MAGIC (OpenAFS)
	0x6B414653: {"afs", true, false}, // AFS_FS_MAGIC (kAFS)
	0x01021997: {"9p", true, false},  // V9FS_MAGIC
	0x00C36400: {"ceph", true, false},
	0x01161970: {"gfs2", true, false},
	0x7461636F: {"ocfs2", true, false},
	0x0BD00BD0: {"lustre", true, false},
	0x47504653: {"gpfs", true, false},
	0x564C:     {"ncpfs", true, false},

	// FUSE: whether it is networked depends on the server (see Stat).
	0x65735546: {"fuse", false, true},

	// Local file systems.
	0xEF53:     {"ext4", false, false}, // also ext2 and ext3
	0x58465342: {"xfs", false, false},
	0x9123683E: {"btrfs", false, false},
	0x01021994: {"tmpfs", false, false},
	0x794C7630: {"overlay", false, false},
	0x2FC12FC1: {"zfs", false, false},
	0xF2F52010: {"f2fs", false, false},
	0x4D44:     {"vfat", false, false}, // MSDOS_SUPER_MAGIC
	0x2011BAB0: {"exfat", false, false},
	0x5346544E: {"ntfs", false, false},
	0xF15F:     {"ecryptfs", false, false},
	0x73717368: {"squashfs", false, false},
	0x858458F6: {"ramfs", false, false},
	0xCA451A4E: {"bcachefs", false, false},
	0x3434:     {"nilfs2", false, false},
	0xE0F5E1E2: {"erofs", false, false},
	0x9660:     {"iso9660", false, false},
	0x9FA0:     {"proc", false, false},
	0x62656572: {"sysfs", false, false},
}

// Describe returns the name of the file system whose statfs f_type is
// magic, and whether it is a network or FUSE file system. An unknown magic
// number gives "unknown", false, false. FUSE file systems are all "fuse"
// here, networked or not; Stat refines them from the mount table.
func Describe(magic int64) (name string, network, fuse bool) {
	// f_type is 32 bits wide in practice but signed on some platforms.
	k, ok := magics[uint32(magic)]
	if !ok {
		return "unknown", false, false
	}
	return k.name, k.network, k.fuse
}

// networkTypes are mount types (the fstype field of mountinfo) of network
// and cluster file systems, with the name Stat reports for each.
var networkTypes = map[string]string{
	"nfs": "nfs", "nfs4": "nfs",
	"cifs": "cifs", "smb3": "smb3", "smbfs": "smbfs", "smb2": "smb2",
	"afs": "afs", "coda": "coda", "9p": "9p", "ceph": "ceph",
	"lustre": "lustre", "gfs2": "gfs2", "ocfs2": "ocfs2", "gpfs": "gpfs",
	"glusterfs": "glusterfs", "beegfs": "beegfs", "orangefs": "orangefs",
	"pvfs2": "pvfs2", "ncpfs": "ncpfs", "ncp": "ncpfs", "davfs": "davfs",
}

// networkFUSE are FUSE subtypes ("fuse.<subtype>" in mountinfo) whose
// server keeps the files on another machine.
var networkFUSE = map[string]bool{
	"sshfs": true, "glusterfs": true, "s3fs": true, "rclone": true,
	"gcsfuse": true, "ceph": true, "ceph-fuse": true, "juicefs": true,
	"curlftpfs": true, "goofys": true, "mountpoint-s3": true,
	"blobfuse": true, "blobfuse2": true, "mfs": true, "lizardfs": true,
	"seaweedfs": true, "davfs": true, "davfs2": true,
}

// describeType is Describe for a mount type from mountinfo ("ext4",
// "nfs4", "fuse.sshfs", ...).
func describeType(fstype string) (name string, network, fuse bool) {
	if n, ok := networkTypes[fstype]; ok {
		return n, true, false
	}
	switch {
	case fstype == "fuse" || fstype == "fuseblk" || fstype == "virtiofs":
		return fstype, false, true
	case strings.HasPrefix(fstype, "fuse."):
		return fstype, networkFUSE[strings.TrimPrefix(fstype, "fuse.")], true
	case strings.HasPrefix(fstype, "fuseblk."):
		return fstype, false, true
	}
	return fstype, false, false
}

// refine completes info, built from statfs, with the type of the mount
// holding the path. trusted says the mount is known to be the right one
// (its device number is that of the path); otherwise the mount type is only
// used where statfs cannot tell (FUSE, or an unknown magic number), so that
// a wrong guess never turns a local file system into a network one.
func refine(info Info, fstype string, trusted bool) Info {
	if fstype == "" || !(trusted || info.FUSE || info.Type == "unknown") {
		return info
	}
	name, network, fuse := describeType(fstype)
	info.Type = name
	info.Network = info.Network || network
	info.FUSE = info.FUSE || fuse
	return info
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	major, minor uint32 // st_dev of files on the mount
	root         string // the mount's root within its file system
	point        string // where it is mounted
	fstype       string // "ext4", "nfs4", "fuse.sshfs", ...
	source       string // "/dev/sda1", "server:/export", ...
}

// parseMountinfo reads the lines of a mountinfo file (see proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Paths are unescaped (\040 is a space). A line it cannot parse is an
// error naming the line.
func parseMountinfo(r io.Reader) ([]mount, error) {
	var mounts []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, err := parseMountLine(line)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return mounts, nil
}

// parseMountLine parses one mountinfo line.
func parseMountLine(line string) (mount, error) {
	f := strings.Fields(line)
	// Mount ID, parent ID, major:minor, root, mount point, options, then
	// optional fields up to "-", then type, source and super options.
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
		return mount{}, fmt.Errorf("malformed: %q", line)
	}
	majStr, minStr, ok := strings.Cut(f[2], ":")
	if !ok {
		return mount{}, fmt.Errorf("malformed device %q", f[2])
	}
	maj, err := strconv.ParseUint(majStr, 10, 32)
	if err != nil {
		return mount{}, fmt.Errorf("malformed device %q: %w", f[2], err)
	}
	minor, err := strconv.ParseUint(minStr, 10, 32)
	if err != nil {
		return mount{}, fmt.Errorf("malformed device %q: %w", f[2], err)
	}
	return mount{
		major:  uint32(maj),
		minor:  uint32(minor),
		root:   unescapeMount(f[3]),
		point:  unescapeMount(f[4]),
		fstype: unescapeMount(f[sep+1]),
		source: unescapeMount(f[sep+2]),
	}, nil
}

// unescapeMount undoes the kernel's escaping of mountinfo fields: space,
// tab, newline and backslash are written as \040, \011, \012 and \134.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] <= '3' && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }

// findMount returns the mount holding path (absolute, without symlinks):
// the one with the longest mount point containing it, preferring mounts
// whose device is dev (any of them) when one is. The later of two mounts on
// the same point is the one on top. matched says the device matched.
func findMount(mounts []mount, path string, devs ...[2]uint32) (m mount, matched, found bool) {
	best, bestDev := -1, -1
	for i, mt := range mounts {
		if !under(path, mt.point) {
			continue
		}
		if best < 0 || len(mt.point) >= len(mounts[best].point) {
			best = i
		}
		for _, d := range devs {
			if mt.major == d[0] && mt.minor == d[1] &&
				(bestDev < 0 || len(mt.point) >= len(mounts[bestDev].point)) {
				bestDev = i
			}
		}
	}
	switch {
	case bestDev >= 0:
		return mounts[bestDev], true, true
	case best >= 0:
		return mounts[best], false, true
	}
	return mount{}, false, false
}

// under reports whether path is point or inside it.
func under(path, point string) bool {
	if point == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == point || strings.HasPrefix(path, point+"/")
}
