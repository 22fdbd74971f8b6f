#pragma once
// A reader-writer lock under which a waiting writer goes before readers that come after it.
// std::shared_mutex (glibc's default rwlock) prefers readers: a steady stream of reads of one
// file would keep its writer out for as long as the stream lasts.
#include <pthread.h>

#include <system_error>

namespace vscard {

class WriterFirstMutex {
public:
    WriterFirstMutex() {
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        // The plain PREFER_WRITER kind behaves as PREFER_READER in glibc; this one does not
        // (and forbids taking the read lock twice in one thread, which nothing here does).
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        int rc = pthread_rwlock_init(&lock_, &attr);
        pthread_rwlockattr_destroy(&attr);
        check(rc);
    }
    ~WriterFirstMutex() { pthread_rwlock_destroy(&lock_); }
    WriterFirstMutex(const WriterFirstMutex&) = delete;
    WriterFirstMutex& operator=(const WriterFirstMutex&) = delete;

    void lock() { check(pthread_rwlock_wrlock(&lock_)); }
    bool try_lock() { return pthread_rwlock_trywrlock(&lock_) == 0; }
    void unlock() { pthread_rwlock_unlock(&lock_); }
    void lock_shared() { check(pthread_rwlock_rdlock(&lock_)); }
    bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }
    void unlock_shared() { pthread_rwlock_unlock(&lock_); }

private:
    static void check(int rc) {
        if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock");
    }
    pthread_rwlock_t lock_;
};

}  // namespace vscard
