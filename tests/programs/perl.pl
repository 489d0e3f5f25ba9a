# perl and its core modules: Data::Dumper, List::Util, Scalar::Util, POSIX, File::Temp,
# File::Path, File::Find, File::Copy, Storable, Digest::MD5 and ::SHA, MIME::Base64,
# JSON::PP, Encode, Time::HiRes, Time::Local, IO::Socket::UNIX (a server in a forked
# child), IO::Select, socketpair, pipes, flock, threads with shared variables and
# Thread::Queue, Getopt::Long, Text::Wrap, Compress::Zlib, signals (SIGALRM from
# ualarm, SIGUSR1 to itself, SIGTERM to a child). Every line is deterministic.
use strict; use warnings;
use Data::Dumper; $Data::Dumper::Sortkeys = 1; $Data::Dumper::Indent = 1;
use List::Util qw(sum max first reduce shuffle);
use Scalar::Util qw(blessed reftype looks_like_number);
use POSIX qw(floor ceil strftime WNOHANG :sys_wait_h);
use File::Temp qw(tempdir);
use File::Spec; use File::Path qw(make_path remove_tree); use File::Find; use File::Copy;
use Storable qw(freeze thaw dclone nstore retrieve);
use Digest::MD5 qw(md5_hex); use Digest::SHA qw(sha256_hex);
use MIME::Base64; use JSON::PP; use Encode qw(encode decode);
use Time::HiRes qw(usleep time); use Time::Local qw(timegm);
use IO::Socket::UNIX; use IO::Select; use IO::Handle;
use Socket; use Fcntl qw(:flock SEEK_SET);
use Getopt::Long qw(GetOptionsFromArray); use Text::Wrap qw(wrap);
use threads; use threads::shared; use Thread::Queue;
use Compress::Zlib; use Sys::Hostname ();

print Dumper({ list => [1, 2, 3], h => { a => undef, b => \"s" } });
print "sum ", sum(1..100), " max ", max(3, 9, 2), " first ", first { $_ > 3 } (1..10); print "\n";
print "reduce ", reduce { $a * $b } 1..10; print "\n";
print "floor ", floor(-2.5), " ceil ", ceil(2.1), " ", strftime("%Y-%m-%d", gmtime(86400 * 365)), "\n";
my $d = tempdir(CLEANUP => 1);
make_path("$d/x/y/z");
open(my $fh, '>', "$d/x/y/z/f.txt") or die; print $fh "line $_\n" for 1..5; close $fh;
copy("$d/x/y/z/f.txt", "$d/x/g.txt") or die;
my @found; find(sub { push @found, $File::Find::name =~ s/^\Q$d\E//r if -f }, $d);
print "found ", join(",", sort @found), "\n";
open($fh, '+<', "$d/x/g.txt") or die; flock($fh, LOCK_EX) or die; seek($fh, 0, SEEK_SET); my @l = <$fh>; close $fh;
print "lines ", scalar(@l), " md5 ", md5_hex(join "", @l), "\n";
my $data = { n => [1 .. 5], s => "str" };
print "storable ", Dumper(thaw(freeze($data))) eq Dumper($data) ? "same" : "differ", "\n";
nstore($data, "$d/st"); print "nstore ", retrieve("$d/st")->{s}, "\n";
print "sha256 ", sha256_hex("abc"), "\n";
print "base64 ", encode_base64("perl core modules", ""), "\n";
my $json = JSON::PP->new->canonical; print "json ", $json->encode({ b => [1, "2"], a => JSON::PP::true }), "\n";
print "utf8 ", length(decode("UTF-8", "\xc3\xa9t\xc3\xa9")), " ", length(encode("UTF-8", "\x{263a}")), "\n";
print "timegm ", timegm(0, 0, 0, 1, 0, 2000), "\n";
my $t0 = time; usleep(20000); print "usleep ", (time - $t0 >= 0.02 ? "ok" : "short"), "\n";
# A unix socket server in a forked child.
my $sp = "$d/sock";
my $srv = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $sp, Listen => 5) or die "listen: $!";
my $pid = fork // die;
if ($pid == 0) { my $c = $srv->accept; my $l = <$c>; print $c uc $l; close $c; exit 0 }
my $cl = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sp) or die "connect: $!";
print $cl "over a unix socket\n"; my $r = <$cl>; print "socket $r";
waitpid($pid, 0); print "child exit ", $? >> 8, "\n";
socketpair(my $s1, my $s2, AF_UNIX, SOCK_STREAM, PF_UNSPEC) or die; $s1->autoflush(1);
print $s1 "pair\n"; my $sel = IO::Select->new($s2); print "select ", scalar($sel->can_read(5)), " ", scalar(<$s2>);
pipe(my $rd, my $wr) or die; my $p2 = fork // die;
if (!$p2) { close $rd; print $wr "from child $_\n" for 1..3; exit 5 }
close $wr; my @cl = <$rd>; waitpid($p2, 0); print "pipe ", scalar(@cl), " exit ", $? >> 8, "\n";
my $counter :shared = 0;
my @th = map { threads->create(sub { for (1..1000) { lock($counter); $counter++ } return threads->tid > 0 }) } 1..4;
print "threads ", sum(map { $_->join } @th), " counter $counter\n";
my $q = Thread::Queue->new; my $w = threads->create(sub { my $s = 0; while (defined(my $i = $q->dequeue)) { $s += $i } $s });
$q->enqueue($_) for 1..100; $q->end; print "queue ", $w->join, "\n";
my @args = ('--name', 'x', '-v', '-v'); my ($name, $v) = ('', 0);
GetOptionsFromArray(\@args, 'name=s' => \$name, 'v+' => \$v); print "getopt $name $v\n";
$Text::Wrap::columns = 20; print wrap("", "  ", "the quick brown fox jumps over the lazy dog"), "\n";
my $z = compress("z" x 1000); print "zlib ", length(uncompress($z)), "\n";
local $SIG{ALRM} = sub { die "alarm\n" }; eval { Time::HiRes::ualarm(100000); select(undef, undef, undef, 3); alarm 0 }; print "alarm: $@";
local $SIG{USR1} = sub { print "got USR1\n" }; kill 'USR1', $$; 
my $kid = fork // die; if (!$kid) { sleep 10; exit 0 } kill 'TERM', $kid; waitpid($kid, 0); print "term ", $? & 127, "\n";
print "done\n";
