//! An in-memory [`AddressSpace`] for tests: a sparse map of 4 KiB pages with
//! protections, so the memory manager, the loader and syscall handlers can be tested
//! without a platform.
//!
//! Pages are materialised lazily: a page reads as zeros (anonymous) or as its file
//! contents (read with `pread` on a private duplicate of the fd) until it is written.
//! Shared file mappings are modelled like private ones: writes are not carried back to
//! the file (no test relies on that). A single `map` larger than [`MAX_MAP`] fails with
//! `ENOMEM`, so a hostile input under test cannot make the fake allocate without bound.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errno::{Errno, SysResult};
use crate::mm::Mappable;
use crate::platform::{AddressSpace, Backing, PAGE_SIZE};

/// The largest single mapping the fake accepts.
pub const MAX_MAP: u64 = 1 << 32;

#[derive(Clone)]
enum PageSource {
    Zero,
    File { fd: Arc<OwnedFd>, offset: u64 },
}

#[derive(Clone)]
struct Page {
    prot: i32,
    shared: bool,
    noreserve: bool,
    source: PageSource,
    data: Option<Box<[u8]>>,
}

impl Page {
    fn contents(&self) -> SysResult<Vec<u8>> {
        if let Some(d) = &self.data {
            return Ok(d.to_vec());
        }
        let mut buf = vec![0u8; PAGE_SIZE as usize];
        if let PageSource::File { fd, offset } = &self.source {
            let mut done = 0usize;
            while done < buf.len() {
                let off = i64::try_from(offset + done as u64).map_err(|_| Errno::EINVAL)?;
                let n = nix::sys::uio::pread(fd.as_fd(), &mut buf[done..], off)?;
                if n == 0 {
                    break;
                }
                done += n;
            }
        }
        Ok(buf)
    }
}

/// The fake address space.
#[derive(Default)]
pub struct FakeSpace {
    pages: Mutex<BTreeMap<u64, Page>>,
}

fn check_range(addr: u64, len: u64) -> SysResult<u64> {
    if !addr.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(Errno::EINVAL);
    }
    addr.checked_add(len).ok_or(Errno::EINVAL)
}

impl FakeSpace {
    /// An empty address space.
    pub fn new() -> Arc<FakeSpace> {
        Arc::new(FakeSpace::default())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Page>> {
        // A panicking test thread must not hide the state from the others.
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The protection of the page containing `addr`, or `None` if it is unmapped.
    pub fn prot_at(&self, addr: u64) -> Option<i32> {
        self.lock().get(&(addr & !(PAGE_SIZE - 1))).map(|p| p.prot)
    }

    /// Whether the page containing `addr` is mapped shared.
    pub fn shared_at(&self, addr: u64) -> Option<bool> {
        self.lock()
            .get(&(addr & !(PAGE_SIZE - 1)))
            .map(|p| p.shared)
    }

    /// Whether the page containing `addr` is anonymous memory mapped with
    /// MAP_NORESERVE.
    pub fn noreserve_at(&self, addr: u64) -> Option<bool> {
        self.lock()
            .get(&(addr & !(PAGE_SIZE - 1)))
            .map(|p| p.noreserve)
    }

    /// The number of mapped pages.
    pub fn page_count(&self) -> usize {
        self.lock().len()
    }

    fn copy(
        &self,
        addr: u64,
        len: usize,
        mut f: impl FnMut(&mut Page, usize, usize, usize) -> SysResult<()>,
    ) -> SysResult<usize> {
        let mut pages = self.lock();
        let mut done = 0usize;
        while done < len {
            let Some(cur) = addr.checked_add(done as u64) else {
                break;
            };
            let base = cur & !(PAGE_SIZE - 1);
            let Some(page) = pages.get_mut(&base) else {
                break;
            };
            let in_page = (cur - base) as usize;
            let n = (PAGE_SIZE as usize - in_page).min(len - done);
            f(page, in_page, done, n)?;
            done += n;
        }
        if done == 0 && len > 0 {
            return Err(Errno::EFAULT);
        }
        Ok(done)
    }
}

impl AddressSpace for FakeSpace {
    fn map(
        &self,
        addr: u64,
        len: u64,
        prot: i32,
        shared: bool,
        backing: Backing<'_>,
    ) -> SysResult<()> {
        let end = check_range(addr, len)?;
        if len > MAX_MAP {
            return Err(Errno::ENOMEM);
        }
        let noreserve = matches!(backing, Backing::AnonymousNoReserve);
        let (fd, base_off) = match backing {
            Backing::Anonymous | Backing::AnonymousNoReserve => (None, 0),
            Backing::File { fd, offset } => (Some(Arc::new(fd.try_clone_to_owned()?)), offset),
        };
        let mut pages = self.lock();
        let old: Vec<u64> = pages.range(addr..end).map(|(k, _)| *k).collect();
        for k in old {
            pages.remove(&k);
        }
        let mut a = addr;
        while a < end {
            let source = match &fd {
                None => PageSource::Zero,
                Some(fd) => PageSource::File {
                    fd: fd.clone(),
                    offset: base_off + (a - addr),
                },
            };
            pages.insert(
                a,
                Page {
                    prot,
                    shared,
                    noreserve,
                    source,
                    data: None,
                },
            );
            a += PAGE_SIZE;
        }
        Ok(())
    }

    fn unmap(&self, addr: u64, len: u64) -> SysResult<()> {
        let end = check_range(addr, len)?;
        let mut pages = self.lock();
        let old: Vec<u64> = pages.range(addr..end).map(|(k, _)| *k).collect();
        for k in old {
            pages.remove(&k);
        }
        Ok(())
    }

    fn remap(&self, old: u64, old_len: u64, new: u64, new_len: u64) -> SysResult<()> {
        let old_end = check_range(old, old_len)?;
        let new_end = check_range(new, new_len)?;
        if new_len > MAX_MAP {
            return Err(Errno::ENOMEM);
        }
        let mut pages = self.lock();
        let mut moved = Vec::new();
        let mut a = old;
        while a < old_end {
            moved.push(pages.get(&a).cloned().ok_or(Errno::EFAULT)?);
            a += PAGE_SIZE;
        }
        let stale: Vec<u64> = pages
            .range(old..old_end)
            .chain(pages.range(new..new_end))
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            pages.remove(&k);
        }
        let Some(last) = moved.last().cloned() else {
            return Err(Errno::EFAULT);
        };
        let mut i = 0u64;
        let mut a = new;
        while a < new_end {
            let page = match moved.get(i as usize) {
                Some(p) => p.clone(),
                None => {
                    // Growth is backed like the original mapping, continuing the file.
                    let extra = i + 1 - moved.len() as u64;
                    let source = match &last.source {
                        PageSource::Zero => PageSource::Zero,
                        PageSource::File { fd, offset } => PageSource::File {
                            fd: fd.clone(),
                            offset: offset + extra * PAGE_SIZE,
                        },
                    };
                    Page {
                        prot: last.prot,
                        shared: last.shared,
                        noreserve: last.noreserve,
                        source,
                        data: None,
                    }
                }
            };
            pages.insert(a, page);
            a += PAGE_SIZE;
            i += 1;
        }
        Ok(())
    }

    fn protect(&self, addr: u64, len: u64, prot: i32) -> SysResult<()> {
        let end = check_range(addr, len)?;
        let mut pages = self.lock();
        let mut a = addr;
        while a < end {
            if !pages.contains_key(&a) {
                return Err(Errno::ENOMEM);
            }
            a += PAGE_SIZE;
        }
        for (_, p) in pages.range_mut(addr..end) {
            p.prot = prot;
        }
        Ok(())
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> SysResult<usize> {
        let len = buf.len();
        self.copy(addr, len, |page, in_page, done, n| {
            let c = page.contents()?;
            buf[done..done + n].copy_from_slice(&c[in_page..in_page + n]);
            Ok(())
        })
    }

    fn write(&self, addr: u64, buf: &[u8]) -> SysResult<usize> {
        self.copy(addr, buf.len(), |page, in_page, done, n| {
            if page.data.is_none() {
                page.data = Some(page.contents()?.into_boxed_slice());
            }
            if let Some(d) = page.data.as_mut() {
                d[in_page..in_page + n].copy_from_slice(&buf[done..done + n]);
            }
            Ok(())
        })
    }
}

/// A host file as a [`Mappable`], for tests.
pub struct FakeFile {
    /// The open host file.
    pub file: File,
    /// Its name in `/proc/PID/maps`.
    pub name: String,
}

impl FakeFile {
    /// Wraps `file`.
    pub fn new(file: File, name: &str) -> Arc<FakeFile> {
        Arc::new(FakeFile {
            file,
            name: name.to_string(),
        })
    }
}

impl Mappable for FakeFile {
    fn host_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
    fn display_name(&self) -> String {
        self.name.clone()
    }
    fn dev_ino(&self) -> (u64, u64) {
        (0, 0)
    }
}
