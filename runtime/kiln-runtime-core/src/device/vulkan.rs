//! Vulkan compute (`libvulkan.so.1`, opened with `dlopen`; `ash` for the API's types and
//! function tables, used without its own loader so the runtime stays `no_std`).
//!
//! - Device: `KILN_DEVICE` (an index into the physical devices) or else the first discrete
//!   GPU, integrated GPU, virtual GPU or CPU device (Mesa's lavapipe), in that order; the
//!   first queue family with compute.
//! - Memory: every buffer is host-visible and coherent (device-local as well where the device
//!   has such memory), mapped once: uploads and downloads are copies into the mapping.
//! - Addresses: a buffer slot in the high bits, a byte offset in the low [`OFFSET_BITS`];
//!   a kernel argument binds its buffer at that offset, which must be a multiple of the
//!   device's `minStorageBufferOffsetAlignment` (Kiln's homes are 64-byte aligned).
//! - Kernels: one compute pipeline per kernel (created at load), one storage-buffer binding
//!   per argument in argument order (set 0); scalar arguments are written to a small buffer
//!   of the run and bound like buffers (what MLIR's SPIR-V ABI expects).
//! - A run records every launch into one command buffer, with a compute-to-compute memory
//!   barrier after each dispatch, and submits it when the entry returns.

use super::{
    arg_bytes, arg_is_address, choose_images, open_driver, symbol, Backend, Image, Kernel,
    OFFSET_BITS,
};
use crate::abi;
use crate::error::Error;
use crate::sys::{Library, Mutex};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use ash::vk;

/// A buffer and its mapped memory.
struct Buf {
    buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    size: u64,
    mapped: *mut u8,
}

/// One kernel's pipeline.
struct Pipe {
    set_layout: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
    args: Vec<u8>,
}

/// What runs change: buffers, the command buffer being recorded, descriptor pools.
struct State {
    buffers: Vec<Option<Buf>>,
    free_slots: Vec<usize>,
    recording: bool,
    pools: Vec<vk::DescriptorPool>,
    /// Scalar arguments of the run: a buffer and the bytes used in it.
    scalars: Vec<(usize, u64)>,
}

pub(crate) struct Vulkan {
    instance: ash::Instance,
    device: ash::Device,
    queue: vk::Queue,
    memory_type: u32,
    align: u64,
    shaders: Vec<vk::ShaderModule>,
    pipes: Vec<Pipe>,
    command_pool: vk::CommandPool,
    command: vk::CommandBuffer,
    fence: vk::Fence,
    state: Mutex<State>,
    /// Last field: the loader stays loaded while anything above is used.
    _lib: Library,
}

// SAFETY: Vulkan handles may be used from any thread; everything that needs external
// synchronization (the command buffer, pools, the queue) is used under `state`'s lock or
// during load and drop.
unsafe impl Send for Vulkan {}
// SAFETY: as above.
unsafe impl Sync for Vulkan {}

const SCALAR_BUFFER: u64 = 64 * 1024;
const SETS_PER_POOL: u32 = 256;

fn failed(what: &str, r: vk::Result) -> Error {
    Error::DeviceFailed(format!("Vulkan: {what}: {r:?}"))
}

fn unavailable(m: String) -> Error {
    Error::DeviceUnavailable(format!("Vulkan: {m}"))
}

/// The SPIR-V words of an image (copied: the bytes need not be 4-byte aligned).
fn words(data: &[u8]) -> Result<Vec<u32>, Error> {
    if data.len() % 4 != 0 || data.len() < 20 {
        return Err(Error::LoadFailed(
            "SPIR-V image is not a whole number of words".into(),
        ));
    }
    let w: Vec<u32> = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if w[0] != 0x0723_0203 {
        return Err(Error::LoadFailed(
            "SPIR-V image has no SPIR-V magic number".into(),
        ));
    }
    Ok(w)
}

impl Vulkan {
    pub(crate) fn open(
        images: &[Image<'_>],
        kernels: &[Kernel],
        wanted: Option<u32>,
    ) -> Result<Vulkan, Error> {
        let lib = open_driver("Vulkan", &[c"libvulkan.so.1", c"libvulkan.so"])?;
        // SAFETY: the loader's vkGetInstanceProcAddr.
        let gipa: vk::PFN_vkGetInstanceProcAddr =
            unsafe { symbol(&lib, "Vulkan", c"vkGetInstanceProcAddr")? };
        // SAFETY: a valid vkGetInstanceProcAddr of a loaded loader.
        let entry = unsafe {
            ash::Entry::from_static_fn(ash::StaticFn {
                get_instance_proc_addr: gipa,
            })
        };
        // SAFETY: plain API calls with valid create infos below.
        let version = unsafe { entry.try_enumerate_instance_version() }
            .ok()
            .flatten()
            .unwrap_or(vk::API_VERSION_1_0);
        if version < vk::API_VERSION_1_1 {
            return Err(unavailable(
                "the loader supports only Vulkan 1.0 (1.1 needed)".into(),
            ));
        }
        let api = version.min(vk::API_VERSION_1_2);
        let app = vk::ApplicationInfo::default()
            .application_name(c"kiln")
            .engine_name(c"kiln")
            .api_version(api);
        let info = vk::InstanceCreateInfo::default().application_info(&app);
        // SAFETY: as above.
        let instance = unsafe { entry.create_instance(&info, None) }
            .map_err(|r| unavailable(format!("vkCreateInstance: {r:?}")))?;
        match Vulkan::with_instance(&instance, lib, images, kernels, api, wanted) {
            Ok(v) => Ok(v),
            Err((e, lib)) => {
                // SAFETY: nothing else was created from the instance.
                unsafe { instance.destroy_instance(None) };
                drop(lib);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_lines)]
    fn with_instance(
        instance: &ash::Instance,
        lib: Library,
        images: &[Image<'_>],
        kernels: &[Kernel],
        api: u32,
        wanted: Option<u32>,
    ) -> Result<Vulkan, (Error, Library)> {
        macro_rules! tr {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Err((e, lib)),
                }
            };
        }
        // SAFETY: a live instance.
        let devices = tr!(unsafe { instance.enumerate_physical_devices() }
            .map_err(|r| unavailable(format!("vkEnumeratePhysicalDevices: {r:?}"))));
        if devices.is_empty() {
            return Err((unavailable("no Vulkan device".into()), lib));
        }
        let props: Vec<vk::PhysicalDeviceProperties> = devices
            .iter()
            // SAFETY: devices of the instance.
            .map(|&d| unsafe { instance.get_physical_device_properties(d) })
            .collect();
        let wanted = wanted
            .or_else(|| crate::env::device().ok().flatten())
            .map(|i| i as usize);
        let index = match wanted {
            Some(i) if i < devices.len() => i,
            Some(i) => {
                return Err((
                    unavailable(format!("no device {i} ({} devices)", devices.len())),
                    lib,
                ))
            }
            None => {
                let rank = |t: vk::PhysicalDeviceType| match t {
                    vk::PhysicalDeviceType::DISCRETE_GPU => 0,
                    vk::PhysicalDeviceType::INTEGRATED_GPU => 1,
                    vk::PhysicalDeviceType::VIRTUAL_GPU => 2,
                    vk::PhysicalDeviceType::CPU => 3,
                    _ => 4,
                };
                (0..devices.len())
                    .min_by_key(|&i| rank(props[i].device_type))
                    .unwrap_or(0)
            }
        };
        let pd = devices[index];
        let limits = props[index].limits;
        let device_api = props[index].api_version.min(api);
        // SAFETY: a device of the instance.
        let families = unsafe { instance.get_physical_device_queue_family_properties(pd) };
        let family = tr!(families
            .iter()
            .position(|f| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .ok_or_else(|| unavailable("no compute queue".into()))) as u32;

        // Features SPIR-V modules may use: enable those the device has.
        let mut f11 = vk::PhysicalDeviceVulkan11Features::default();
        let mut f12 = vk::PhysicalDeviceVulkan12Features::default();
        let has12 = device_api >= vk::API_VERSION_1_2;
        let base = {
            let mut f2 = vk::PhysicalDeviceFeatures2::default().push_next(&mut f11);
            if has12 {
                f2 = f2.push_next(&mut f12);
            }
            // SAFETY: a device of the instance; the chain is valid.
            unsafe { instance.get_physical_device_features2(pd, &mut f2) };
            f2.features
        };
        let enabled = vk::PhysicalDeviceFeatures::default()
            .shader_int64(base.shader_int64 != 0)
            .shader_float64(base.shader_float64 != 0)
            .shader_int16(base.shader_int16 != 0);
        let mut e11 = vk::PhysicalDeviceVulkan11Features::default()
            .storage_buffer16_bit_access(f11.storage_buffer16_bit_access != 0)
            .uniform_and_storage_buffer16_bit_access(
                f11.uniform_and_storage_buffer16_bit_access != 0,
            );
        let mut e12 = vk::PhysicalDeviceVulkan12Features::default()
            .storage_buffer8_bit_access(f12.storage_buffer8_bit_access != 0)
            .uniform_and_storage_buffer8_bit_access(f12.uniform_and_storage_buffer8_bit_access != 0)
            .shader_int8(f12.shader_int8 != 0)
            .shader_float16(f12.shader_float16 != 0);
        let priorities = [1.0f32];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(family)
            .queue_priorities(&priorities)];
        let mut dinfo = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queues)
            .enabled_features(&enabled)
            .push_next(&mut e11);
        if has12 {
            dinfo = dinfo.push_next(&mut e12);
        }
        // SAFETY: valid create info.
        let device = tr!(unsafe { instance.create_device(pd, &dinfo, None) }
            .map_err(|r| unavailable(format!("vkCreateDevice: {r:?}"))));
        // From here on, `device` must be destroyed on failure.
        let result = Vulkan::with_device(instance, pd, &device, family, limits, images, kernels);
        match result {
            Ok((queue, memory_type, shaders, pipes, command_pool, command, fence)) => Ok(Vulkan {
                instance: instance.clone(),
                device,
                queue,
                memory_type,
                align: limits.min_storage_buffer_offset_alignment.max(4),
                shaders,
                pipes,
                command_pool,
                command,
                fence,
                state: Mutex::new(State {
                    buffers: Vec::new(),
                    free_slots: Vec::new(),
                    recording: false,
                    pools: Vec::new(),
                    scalars: Vec::new(),
                }),
                _lib: lib,
            }),
            Err(e) => {
                // SAFETY: objects created in `with_device` were destroyed there on failure.
                unsafe { device.destroy_device(None) };
                Err((e, lib))
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn with_device(
        instance: &ash::Instance,
        pd: vk::PhysicalDevice,
        device: &ash::Device,
        family: u32,
        limits: vk::PhysicalDeviceLimits,
        images: &[Image<'_>],
        kernels: &[Kernel],
    ) -> Result<
        (
            vk::Queue,
            u32,
            Vec<vk::ShaderModule>,
            Vec<Pipe>,
            vk::CommandPool,
            vk::CommandBuffer,
            vk::Fence,
        ),
        Error,
    > {
        // SAFETY: a queue of the family the device was created with.
        let queue = unsafe { device.get_device_queue(family, 0) };
        // SAFETY: a device of the instance.
        let mem = unsafe { instance.get_physical_device_memory_properties(pd) };
        let host = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let types = &mem.memory_types[..mem.memory_type_count as usize];
        let memory_type = types
            .iter()
            .position(|t| {
                t.property_flags
                    .contains(host | vk::MemoryPropertyFlags::DEVICE_LOCAL)
            })
            .or_else(|| types.iter().position(|t| t.property_flags.contains(host)))
            .ok_or_else(|| unavailable("no host-visible memory".into()))?
            as u32;
        for k in kernels {
            for (d, &b) in k.block.iter().enumerate() {
                if b > limits.max_compute_work_group_size[d] {
                    return Err(unavailable(format!(
                        "kernel {} needs workgroups of {:?} threads",
                        k.name.to_string_lossy(),
                        k.block
                    )));
                }
            }
        }
        let chosen = choose_images("Vulkan", images, kernels, |im| {
            im.format == abi::FORMAT_SPIRV
        })?;
        let mut shaders: Vec<(u32, vk::ShaderModule)> = Vec::new();
        let mut pipes: Vec<Pipe> = Vec::new();
        let cleanup = |shaders: &[(u32, vk::ShaderModule)], pipes: &[Pipe]| {
            for p in pipes {
                // SAFETY: objects of this device, destroyed once.
                unsafe {
                    device.destroy_pipeline(p.pipeline, None);
                    device.destroy_pipeline_layout(p.layout, None);
                    device.destroy_descriptor_set_layout(p.set_layout, None);
                }
            }
            for &(_, s) in shaders {
                // SAFETY: as above.
                unsafe { device.destroy_shader_module(s, None) };
            }
        };
        let build = |shaders: &mut Vec<(u32, vk::ShaderModule)>,
                     pipes: &mut Vec<Pipe>|
         -> Result<(), Error> {
            for (group, image) in chosen {
                let code = words(image.data)?;
                let info = vk::ShaderModuleCreateInfo::default().code(&code);
                // SAFETY: SPIR-V words of a validated module.
                let s = unsafe { device.create_shader_module(&info, None) }
                    .map_err(|r| failed("vkCreateShaderModule", r))?;
                shaders.push((group, s));
            }
            for k in kernels {
                let module = shaders
                    .iter()
                    .find(|(g, _)| *g == k.group)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| Error::LoadFailed("kernel without a module".into()))?;
                let bindings: Vec<vk::DescriptorSetLayoutBinding> = (0..k.args.len() as u32)
                    .map(|i| {
                        vk::DescriptorSetLayoutBinding::default()
                            .binding(i)
                            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                            .descriptor_count(1)
                            .stage_flags(vk::ShaderStageFlags::COMPUTE)
                    })
                    .collect();
                let linfo = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
                // SAFETY: valid create infos.
                let set_layout = unsafe { device.create_descriptor_set_layout(&linfo, None) }
                    .map_err(|r| failed("vkCreateDescriptorSetLayout", r))?;
                let layouts = [set_layout];
                let pinfo = vk::PipelineLayoutCreateInfo::default().set_layouts(&layouts);
                // SAFETY: as above.
                let layout = match unsafe { device.create_pipeline_layout(&pinfo, None) } {
                    Ok(l) => l,
                    Err(r) => {
                        // SAFETY: created just above.
                        unsafe { device.destroy_descriptor_set_layout(set_layout, None) };
                        return Err(failed("vkCreatePipelineLayout", r));
                    }
                };
                let stage = vk::PipelineShaderStageCreateInfo::default()
                    .stage(vk::ShaderStageFlags::COMPUTE)
                    .module(module)
                    .name(&k.name);
                let cinfo = [vk::ComputePipelineCreateInfo::default()
                    .stage(stage)
                    .layout(layout)];
                // SAFETY: as above.
                let pipeline = match unsafe {
                    device.create_compute_pipelines(vk::PipelineCache::null(), &cinfo, None)
                } {
                    Ok(p) => p[0],
                    Err((_, r)) => {
                        // SAFETY: created just above.
                        unsafe {
                            device.destroy_pipeline_layout(layout, None);
                            device.destroy_descriptor_set_layout(set_layout, None);
                        }
                        return Err(failed(
                            &format!(
                                "creating the pipeline of kernel {}",
                                k.name.to_string_lossy()
                            ),
                            r,
                        ));
                    }
                };
                pipes.push(Pipe {
                    set_layout,
                    layout,
                    pipeline,
                    args: k.args.clone(),
                });
            }
            Ok(())
        };
        if let Err(e) = build(&mut shaders, &mut pipes) {
            cleanup(&shaders, &pipes);
            return Err(e);
        }
        let pool_info = vk::CommandPoolCreateInfo::default().queue_family_index(family);
        // SAFETY: valid create infos; on failure everything made so far is destroyed.
        let made = unsafe {
            device
                .create_command_pool(&pool_info, None)
                .and_then(|pool| {
                    let alloc = vk::CommandBufferAllocateInfo::default()
                        .command_pool(pool)
                        .level(vk::CommandBufferLevel::PRIMARY)
                        .command_buffer_count(1);
                    match device.allocate_command_buffers(&alloc) {
                        Ok(b) => match device.create_fence(&vk::FenceCreateInfo::default(), None) {
                            Ok(f) => Ok((pool, b[0], f)),
                            Err(r) => {
                                device.destroy_command_pool(pool, None);
                                Err(r)
                            }
                        },
                        Err(r) => {
                            device.destroy_command_pool(pool, None);
                            Err(r)
                        }
                    }
                })
        };
        let (command_pool, command, fence) = match made {
            Ok(m) => m,
            Err(r) => {
                cleanup(&shaders, &pipes);
                return Err(failed("creating the command buffer", r));
            }
        };
        Ok((
            queue,
            memory_type,
            shaders.into_iter().map(|(_, s)| s).collect(),
            pipes,
            command_pool,
            command,
            fence,
        ))
    }

    fn new_buffer(&self, size: u64) -> Result<Buf, Error> {
        let oom = |r: vk::Result| {
            Error::OutOfMemory(format!("{size} bytes of Vulkan device memory: {r:?}"))
        };
        let info = vk::BufferCreateInfo::default()
            .size(size)
            .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        // SAFETY: valid create infos; each object is destroyed on the failure paths.
        unsafe {
            let buffer = self.device.create_buffer(&info, None).map_err(oom)?;
            let req = self.device.get_buffer_memory_requirements(buffer);
            if req.memory_type_bits & (1 << self.memory_type) == 0 {
                self.device.destroy_buffer(buffer, None);
                return Err(Error::DeviceFailed(
                    "Vulkan: buffers cannot use host-visible memory".into(),
                ));
            }
            let ainfo = vk::MemoryAllocateInfo::default()
                .allocation_size(req.size)
                .memory_type_index(self.memory_type);
            let memory = match self.device.allocate_memory(&ainfo, None) {
                Ok(m) => m,
                Err(r) => {
                    self.device.destroy_buffer(buffer, None);
                    return Err(oom(r));
                }
            };
            let mapped = self
                .device
                .bind_buffer_memory(buffer, memory, 0)
                .and_then(|()| {
                    self.device
                        .map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
                });
            match mapped {
                Ok(p) => Ok(Buf {
                    buffer,
                    memory,
                    size,
                    mapped: p.cast(),
                }),
                Err(r) => {
                    self.device.destroy_buffer(buffer, None);
                    self.device.free_memory(memory, None);
                    Err(oom(r))
                }
            }
        }
    }

    fn destroy_buffer(&self, b: Buf) {
        // SAFETY: a buffer of this device no pending work uses.
        unsafe {
            self.device.destroy_buffer(b.buffer, None);
            self.device.free_memory(b.memory, None);
        }
    }

    fn insert(state: &mut State, b: Buf) -> usize {
        match state.free_slots.pop() {
            Some(i) => {
                state.buffers[i] = Some(b);
                i
            }
            None => {
                state.buffers.push(Some(b));
                state.buffers.len() - 1
            }
        }
    }

    /// The buffer slot and offset of an address.
    fn locate(state: &State, address: u64) -> Result<(usize, u64), Error> {
        let slot = (address >> OFFSET_BITS) as usize;
        let offset = address & ((1u64 << OFFSET_BITS) - 1);
        match slot
            .checked_sub(1)
            .and_then(|s| state.buffers.get(s))
            .and_then(Option::as_ref)
        {
            Some(b) if offset < b.size => Ok((slot - 1, offset)),
            _ => Err(Error::DeviceFailed(format!(
                "Vulkan: address {address:#x} is not inside a buffer"
            ))),
        }
    }

    fn descriptor_set(
        &self,
        state: &mut State,
        layout: vk::DescriptorSetLayout,
        n: u32,
    ) -> Result<vk::DescriptorSet, Error> {
        let layouts = [layout];
        if let Some(&pool) = state.pools.last() {
            let info = vk::DescriptorSetAllocateInfo::default()
                .descriptor_pool(pool)
                .set_layouts(&layouts);
            // SAFETY: a pool and layout of this device.
            if let Ok(sets) = unsafe { self.device.allocate_descriptor_sets(&info) } {
                return Ok(sets[0]);
            }
        }
        let sizes = [vk::DescriptorPoolSize::default()
            .ty(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(SETS_PER_POOL * n.max(16))];
        let pinfo = vk::DescriptorPoolCreateInfo::default()
            .max_sets(SETS_PER_POOL)
            .pool_sizes(&sizes);
        // SAFETY: valid create info.
        let pool = unsafe { self.device.create_descriptor_pool(&pinfo, None) }
            .map_err(|r| failed("vkCreateDescriptorPool", r))?;
        state.pools.push(pool);
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(pool)
            .set_layouts(&layouts);
        // SAFETY: as above.
        unsafe { self.device.allocate_descriptor_sets(&info) }
            .map(|s| s[0])
            .map_err(|r| failed("vkAllocateDescriptorSets", r))
    }

    /// Room for `bytes` of scalar arguments: a buffer slot and offset.
    fn scalar_space(&self, state: &mut State, bytes: u64) -> Result<(usize, u64), Error> {
        let step = bytes.max(1).next_multiple_of(self.align);
        if let Some(last) = state.scalars.last_mut() {
            if last.1 + step <= SCALAR_BUFFER {
                let at = last.1;
                last.1 += step;
                return Ok((last.0, at));
            }
        }
        let b = self.new_buffer(SCALAR_BUFFER)?;
        let slot = Vulkan::insert(state, b);
        state.scalars.push((slot, step));
        Ok((slot, 0))
    }
}

impl Backend for Vulkan {
    fn name(&self) -> &'static str {
        "Vulkan"
    }

    fn alloc(&self, bytes: u64) -> Result<u64, Error> {
        if bytes >= 1 << OFFSET_BITS {
            return Err(Error::OutOfMemory(format!(
                "a Vulkan buffer of {bytes} bytes"
            )));
        }
        let b = self.new_buffer(bytes.max(1))?;
        let mut state = self.state.lock();
        let slot = Vulkan::insert(&mut state, b);
        Ok(((slot as u64) + 1) << OFFSET_BITS)
    }

    fn free(&self, address: u64) {
        let mut state = self.state.lock();
        if let Ok((slot, _)) = Vulkan::locate(&state, address) {
            if let Some(b) = state.buffers[slot].take() {
                state.free_slots.push(slot);
                drop(state);
                self.destroy_buffer(b);
            }
        }
    }

    fn upload(&self, address: u64, bytes: &[u8]) -> Result<(), Error> {
        let state = self.state.lock();
        let (slot, offset) = Vulkan::locate(&state, address)?;
        let b = state.buffers[slot]
            .as_ref()
            .ok_or_else(|| Error::Internal("freed buffer".into()))?;
        if offset + bytes.len() as u64 > b.size {
            return Err(Error::Internal("upload past the end of a buffer".into()));
        }
        // SAFETY: inside the mapping (checked above); coherent memory no pending work reads.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                b.mapped.add(offset as usize),
                bytes.len(),
            )
        };
        Ok(())
    }

    fn download(&self, address: u64, bytes: &mut [u8]) -> Result<(), Error> {
        let state = self.state.lock();
        let (slot, offset) = Vulkan::locate(&state, address)?;
        let b = state.buffers[slot]
            .as_ref()
            .ok_or_else(|| Error::Internal("freed buffer".into()))?;
        if offset + bytes.len() as u64 > b.size {
            return Err(Error::Internal("download past the end of a buffer".into()));
        }
        // SAFETY: inside the mapping; the work writing it has finished (`finish`).
        unsafe {
            core::ptr::copy_nonoverlapping(
                b.mapped.add(offset as usize),
                bytes.as_mut_ptr(),
                bytes.len(),
            )
        };
        Ok(())
    }

    fn launch(&self, kernel: usize, grid: [u64; 3], args: &[i64]) -> Result<(), Error> {
        let mut state = self.state.lock();
        let pipe = &self.pipes[kernel];
        let set = self.descriptor_set(&mut state, pipe.set_layout, pipe.args.len() as u32)?;
        let mut infos: Vec<vk::DescriptorBufferInfo> = Vec::with_capacity(pipe.args.len());
        for (i, &kind) in pipe.args.iter().enumerate() {
            if arg_is_address(kind) {
                let (slot, offset) = Vulkan::locate(&state, args[i] as u64)?;
                if offset % self.align != 0 {
                    return Err(Error::DeviceFailed(format!(
                        "Vulkan: a buffer at offset {offset} is not aligned to {} bytes",
                        self.align
                    )));
                }
                let b = state.buffers[slot]
                    .as_ref()
                    .ok_or_else(|| Error::Internal("freed buffer".into()))?;
                infos.push(
                    vk::DescriptorBufferInfo::default()
                        .buffer(b.buffer)
                        .offset(offset)
                        .range(b.size - offset),
                );
            } else {
                let n = arg_bytes(kind) as u64;
                let (slot, offset) = self.scalar_space(&mut state, n.max(4))?;
                let b = state.buffers[slot]
                    .as_ref()
                    .ok_or_else(|| Error::Internal("freed buffer".into()))?;
                let bytes = args[i].to_le_bytes();
                // SAFETY: `n` (at most 8) bytes inside the mapped scalar buffer.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        b.mapped.add(offset as usize),
                        n as usize,
                    )
                };
                infos.push(
                    vk::DescriptorBufferInfo::default()
                        .buffer(b.buffer)
                        .offset(offset)
                        .range(n.max(4)),
                );
            }
        }
        let writes: Vec<vk::WriteDescriptorSet> = infos
            .iter()
            .enumerate()
            .map(|(i, info)| {
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(i as u32)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(core::slice::from_ref(info))
            })
            .collect();
        let g = |v: u64| {
            u32::try_from(v).map_err(|_| Error::DeviceFailed(format!("grid of {v} workgroups")))
        };
        let (gx, gy, gz) = (g(grid[0])?, g(grid[1])?, g(grid[2])?);
        // SAFETY: objects of this device; the command buffer is used under the state lock.
        unsafe {
            self.device.update_descriptor_sets(&writes, &[]);
            if !state.recording {
                let begin = vk::CommandBufferBeginInfo::default()
                    .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
                self.device
                    .begin_command_buffer(self.command, &begin)
                    .map_err(|r| failed("vkBeginCommandBuffer", r))?;
                state.recording = true;
            }
            self.device.cmd_bind_pipeline(
                self.command,
                vk::PipelineBindPoint::COMPUTE,
                pipe.pipeline,
            );
            self.device.cmd_bind_descriptor_sets(
                self.command,
                vk::PipelineBindPoint::COMPUTE,
                pipe.layout,
                0,
                &[set],
                &[],
            );
            self.device.cmd_dispatch(self.command, gx, gy, gz);
            let barrier = vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::SHADER_WRITE)
                .dst_access_mask(vk::AccessFlags::SHADER_READ | vk::AccessFlags::SHADER_WRITE);
            self.device.cmd_pipeline_barrier(
                self.command,
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::DependencyFlags::empty(),
                &[barrier],
                &[],
                &[],
            );
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), Error> {
        let mut state = self.state.lock();
        let mut result = Ok(());
        if state.recording {
            state.recording = false;
            let commands = [self.command];
            let submit = [vk::SubmitInfo::default().command_buffers(&commands)];
            // SAFETY: a fully recorded command buffer; the fence is unsignaled.
            result = unsafe {
                let host = vk::MemoryBarrier::default()
                    .src_access_mask(vk::AccessFlags::SHADER_WRITE)
                    .dst_access_mask(vk::AccessFlags::HOST_READ);
                self.device.cmd_pipeline_barrier(
                    self.command,
                    vk::PipelineStageFlags::COMPUTE_SHADER,
                    vk::PipelineStageFlags::HOST,
                    vk::DependencyFlags::empty(),
                    &[host],
                    &[],
                    &[],
                );
                self.device
                    .end_command_buffer(self.command)
                    .and_then(|()| self.device.queue_submit(self.queue, &submit, self.fence))
                    .and_then(|()| self.device.wait_for_fences(&[self.fence], true, u64::MAX))
                    .and_then(|()| self.device.reset_fences(&[self.fence]))
                    .map_err(|r| failed("running the kernels", r))
            };
            // SAFETY: the work finished (or failed); nothing uses the pools any more.
            unsafe {
                let _ = self
                    .device
                    .reset_command_pool(self.command_pool, vk::CommandPoolResetFlags::empty());
            }
        }
        for pool in state.pools.drain(..) {
            // SAFETY: no pending work uses the pool's sets.
            unsafe { self.device.destroy_descriptor_pool(pool, None) };
        }
        let scalars: Vec<usize> = state.scalars.drain(..).map(|(s, _)| s).collect();
        let mut dead = vec![];
        for s in scalars {
            if let Some(b) = state.buffers[s].take() {
                state.free_slots.push(s);
                dead.push(b);
            }
        }
        drop(state);
        for b in dead {
            self.destroy_buffer(b);
        }
        result
    }
}

impl Drop for Vulkan {
    fn drop(&mut self) {
        // SAFETY: nothing runs any more; every object belongs to this device, destroyed once.
        unsafe {
            let _ = self.device.device_wait_idle();
            let mut state = self.state.lock();
            for pool in state.pools.drain(..) {
                self.device.destroy_descriptor_pool(pool, None);
            }
            for b in state.buffers.drain(..).flatten() {
                self.device.destroy_buffer(b.buffer, None);
                self.device.free_memory(b.memory, None);
            }
            drop(state);
            self.device.destroy_fence(self.fence, None);
            self.device.destroy_command_pool(self.command_pool, None);
            for p in &self.pipes {
                self.device.destroy_pipeline(p.pipeline, None);
                self.device.destroy_pipeline_layout(p.layout, None);
                self.device
                    .destroy_descriptor_set_layout(p.set_layout, None);
            }
            for &s in &self.shaders {
                self.device.destroy_shader_module(s, None);
            }
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}
