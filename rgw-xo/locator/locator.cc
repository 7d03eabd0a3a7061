#include "rgw-xo/locator/locator.h"

#include "rgw-xo/locator/bucket_meta.h"

namespace xo::rgw {
namespace {
constexpr uint32_t kBucketVersioned = 0x2;  // BUCKET_VERSIONED in rgw_common.h
}

Locator::Locator(librados::Rados& rados, std::shared_ptr<ClusterMap> map, LocatorConfig config)
    : rados_(rados), map_(std::move(map)), config_(std::move(config)) {}

Result<librados::IoCtx*> Locator::ioctx(const std::string& pool) {
  auto it = ioctxs_.find(pool);
  if (it != ioctxs_.end()) return &it->second;
  librados::IoCtx io;
  int r = rados_.ioctx_create(pool.c_str(), io);
  if (r < 0) return error("open pool " + pool, -r);
  pool_ids_[pool] = io.get_id();
  return &ioctxs_.emplace(pool, std::move(io)).first->second;
}

Result<const BucketEntry*> Locator::bucket(const std::string& tenant, const std::string& name) {
  // The common case (no tenant) looks up without building a key string.
  auto it = tenant.empty() ? buckets_.find(name) : buckets_.find(bucket_entrypoint_oid(tenant, name));
  if (it != buckets_.end()) return &it->second;
  std::string ep_oid = bucket_entrypoint_oid(tenant, name);

  XO_ASSIGN_OR_RETURN(librados::IoCtx * meta, ioctx(config_.meta_pool));
  meta->set_namespace(config_.meta_root_ns);
  meta->locator_set_key("");
  librados::bufferlist bl;
  int r = meta->read(ep_oid, bl, 0, 0);
  if (r < 0) return error("bucket entrypoint " + ep_oid, -r);
  auto ep = decode_bucket_entrypoint(bl.to_str());
  if (!ep.ok()) return annotate(ep.take_error(), ep_oid);

  std::string inst_oid = bucket_instance_oid(*ep);
  bl.clear();
  r = meta->read(inst_oid, bl, 0, 0);
  if (r < 0) return error("bucket instance " + inst_oid, -r);
  auto inst = decode_bucket_instance(bl.to_str());
  if (!inst.ok()) return annotate(inst.take_error(), inst_oid);

  BucketEntry e;
  e.bucket = *ep;
  e.placement = inst->placement;
  e.versioned = (inst->flags & kBucketVersioned) != 0;
  if (!e.bucket.explicit_data_pool.empty()) {
    e.head_pool = e.bucket.explicit_data_pool.name;
  } else {
    XO_ASSIGN_OR_RETURN(e.head_pool, config_.placement.data_pool(e.placement));
  }
  return &buckets_.emplace(ep_oid, std::move(e)).first->second;
}

void Locator::forget_bucket(const std::string& tenant, const std::string& name) {
  buckets_.erase(bucket_entrypoint_oid(tenant, name));
}

Result<Locator::HeadRead> Locator::read_head(const std::string& pool, const RawObj& obj) {
  XO_ASSIGN_OR_RETURN(librados::IoCtx * io, ioctx(pool));
  io->locator_set_key(obj.locator);
  librados::ObjectReadOperation op;
  std::map<std::string, librados::bufferlist> attrs;  // one round trip: xattrs and size
  int xattr_rval = 0, stat_rval = 0;
  uint64_t size = 0;
  time_t mtime = 0;
  op.getxattrs(&attrs, &xattr_rval);
  op.stat(&size, &mtime, &stat_rval);
  int r = io->operate(obj.oid, &op, nullptr);
  if (r < 0) return error("read head " + pool + "/" + obj.oid, -r);
  if (xattr_rval < 0) return error("getxattrs " + obj.oid, -xattr_rval);
  if (stat_rval < 0) return error("stat " + obj.oid, -stat_rval);
  HeadRead h;
  h.size = size;
  h.xattrs = std::move(attrs);
  return h;
}

std::vector<XattrView> Locator::HeadRead::views() {
  std::vector<XattrView> v;
  v.reserve(xattrs.size());
  for (auto& [k, bl] : xattrs) v.emplace_back(k, std::string_view(bl.c_str(), bl.length()));
  return v;
}

Result<ObjectLocation> Locator::locate(const std::string& tenant, const std::string& bucket_name,
                                       const std::string& key, const std::string& version_id,
                                       std::optional<std::pair<uint64_t, uint64_t>> range) {
  XO_ASSIGN_OR_RETURN(const BucketEntry* b, bucket(tenant, bucket_name));
  auto loc = locate_once(*b, key, version_id, range);
  if (loc.ok() && !loc->found) {
    // Maybe the bucket was recreated under a new marker: look it up once more.
    std::string old_marker = b->bucket.marker;
    forget_bucket(tenant, bucket_name);
    XO_ASSIGN_OR_RETURN(const BucketEntry* fresh, bucket(tenant, bucket_name));
    if (fresh->bucket.marker != old_marker) return locate_once(*fresh, key, version_id, range);
  }
  return loc;
}

Result<ObjectLocation> Locator::locate_once(const BucketEntry& b, const std::string& key,
                                            const std::string& version_id,
                                            std::optional<std::pair<uint64_t, uint64_t>> range) {
  ObjectLocation out;
  out.head_pool = b.head_pool;
  out.head_object = raw_obj(b.bucket, ObjKey{key, version_id, ""});

  auto head = read_head(out.head_pool, out.head_object);
  if (!head.ok()) {
    if (head.error().code == ENOENT) {
      out.found = false;
      out.not_offloadable = "no such object";
      return out;
    }
    return head.take_error();
  }
  out.head = classify_head(head->views(), head->size);

  if (out.head.olh && out.head.offloadable() && version_id.empty()) {
    // A versioned bucket's OLH: the current version is another RADOS object.
    const Obj& target = out.head.olh->target;
    out.head_object = raw_obj(target.bucket.marker.empty() ? b.bucket : target.bucket, target.key);
    head = read_head(out.head_pool, out.head_object);
    if (!head.ok()) {
      if (head.error().code == ENOENT) {
        out.found = false;
        out.not_offloadable = "OLH target is gone";
        return out;
      }
      return head.take_error();
    }
    out.head = classify_head(head->views(), head->size);
    if (out.head.olh) out.head.not_offloadable = "OLH points at another OLH";
  }
  if (!out.head.offloadable()) {
    out.not_offloadable = out.head.not_offloadable;
    return out;
  }

  uint64_t size = out.head.size;
  if (range) {
    if (range->first >= size && size > 0) {
      out.not_offloadable = "range starts past the end of the object";
      return out;
    }
    out.range_offset = std::min(range->first, size);
    out.range_length = std::min(range->second, size - out.range_offset);
  } else {
    out.range_length = size;
  }

  std::vector<Extent> extents;
  if (out.head.manifest) {
    auto ex = manifest_extents(*out.head.manifest, out.range_offset, out.range_length);
    if (!ex.ok()) {
      out.not_offloadable = ex.error().message;
      return out;
    }
    extents = std::move(*ex);
  } else if (out.range_length > 0) {
    // No manifest: the whole body is the head's data.
    Extent e;
    e.object = out.head_object;
    e.object_offset = e.logical_offset = out.range_offset;
    e.length = out.range_length;
    extents.push_back(std::move(e));
  }

  // All tail extents share one placement: resolve pool name and id once per run of
  // equal (where, explicit pool) instead of once per 4 MiB stripe.
  auto table = map_->table();
  out.extents.reserve(extents.size());
  static const PlacementRule kNoRule;
  bool first = true;
  Extent::Where prev_where{};
  std::string prev_explicit, pool;
  int64_t pool_id = -1;
  for (auto& e : extents) {
    if (first || prev_where != e.where || prev_explicit != e.explicit_pool.name) {
      first = false;
      prev_where = e.where;
      prev_explicit = e.explicit_pool.name;
      if (!e.explicit_pool.empty()) {
        pool = e.explicit_pool.name;
      } else {
        const PlacementRule& rule = out.head.manifest ? extent_placement(*out.head.manifest, e) : kNoRule;
        if (rule.empty() && e.where == Extent::Where::head) {
          pool = out.head_pool;
        } else {
          auto resolved = config_.placement.data_pool(rule.empty() ? b.placement : rule);
          if (!resolved.ok()) {
            out.not_offloadable = resolved.error().message;
            out.extents.clear();
            return out;
          }
          pool = std::move(*resolved);
        }
      }
      auto id = pool_ids_.find(pool);
      if (id == pool_ids_.end()) {
        XO_TRY(ioctx(pool));
        id = pool_ids_.find(pool);
      }
      pool_id = id->second;
    }
    LocatedExtent le;
    le.pool = pool;
    le.pool_id = pool_id;
    if (table) {
      const std::string& hash_key = e.object.locator.empty() ? e.object.oid : e.object.locator;
      le.primary = table->lookup(pool_id, hash_key);
    }
    le.extent = std::move(e);
    out.extents.push_back(std::move(le));
  }
  return out;
}

}  // namespace xo::rgw
