// The Oxford-IIIT Pet layout's reader: its split files and paths (data/dataset.h holds the layout-neutral data set,
// which this header brings along for the code that reads the pets).
//
// Layout: DIR/images/<Name>.jpg, DIR/annotations/trimaps/<Name>.png (1 pet, 2 background, 3 border),
// DIR/annotations/{list,trainval,test}.txt with lines "Name CLASS-ID SPECIES BREED-ID" and '#' comments.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace petseg::data {

class Layout;

inline constexpr const char* kSplitFiles[] = {"list", "trainval", "test"};  // annotations/<name>.txt

fs::path image_path(const fs::path& root, const std::string& name);
fs::path trimap_path(const fs::path& root, const std::string& name);

// One line of a split file.
struct PetRecord {
  std::string name;
  int class_id = 0;  // 1..37
  int species = 0;   // 1 cat, 2 dog
  int breed_id = 0;  // within the species
};

struct SplitFile {
  std::vector<PetRecord> records;
  std::vector<std::string> errors;  // "annotations/test.txt:12: ..." for lines that could not be parsed
};
SplitFile read_split_file(const fs::path& path);

// Pet, background (and border with BorderMode::kClass): the classes the trimaps give.
std::vector<std::string> pet_class_names(BorderMode border);

const Layout& oxford_pets_layout();

}  // namespace petseg::data
